// Public surface of src/transport.
export * from "./types.js";
export { reduceInOrder, partOf } from "./reduce.js";
export { createShmGroup, abortShmGroup, ShmCollectives, type ShmGroupHandle, type ShmOptions } from "./shm-collectives.js";
export { createPortMesh, PortChannel, type PortMesh } from "./channel.js";
export { P2PCollectives } from "./p2p-collectives.js";

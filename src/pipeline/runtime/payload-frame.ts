// Interpreter messages (activations, gradients, targets) as MPI frames (src/transport/mpi/frame.ts):
// the header names the message and its shape, the body is the array's bytes, viewed in place on
// arrival. The processes executor sends and receives them.
import { frameHeader, parseFrame } from "../../transport/mpi/frame.js";
import { TAG, type MpiTransport } from "../../transport/mpi/transport.js";
import type { Payload } from "./interpreter.js";

/** Sends message `key` to rank `to` of communicator `comm` (tag pipe); returns the body's bytes. */
export function sendPayload(mpi: MpiTransport, comm: number, to: number, key: string, payload: Payload): number {
  if (payload.kind === "tensor") {
    mpi.send(comm, to, TAG.pipe, frameHeader({ key, kind: "tensor", shape: payload.shape }), payload.data);
    return payload.data.byteLength;
  }
  mpi.send(comm, to, TAG.pipe, frameHeader({ key, kind: "targets", scale: payload.scale, shape: payload.shape }), payload.labels);
  return payload.labels.byteLength;
}

/** The message a received frame holds (its arrays view the frame's buffer). */
export function payloadOfFrame(data: ArrayBuffer): { key: string; payload: Payload; bytes: number } {
  const { header, body, offset, bytes } = parseFrame(data);
  const payload: Payload = header.kind === "tensor"
    ? { kind: "tensor", data: new Float32Array(body, offset, bytes / 4), shape: header.shape }
    : header.shape ? { kind: "targets", labels: new Float32Array(body, offset, bytes / 4), shape: header.shape, scale: header.scale }
      : { kind: "targets", labels: new Int32Array(body, offset, bytes / 4), scale: header.scale };
  return { key: header.key, payload, bytes };
}

// Wire form of a pipeline message (tag pipe): [u32 header length][header JSON][padding to 8][body].
// The body is the tensor's or labels' raw bytes, so a receiver views it in place (no parse, no copy
// beyond the one out of MPI's buffer).
export type FrameHeader =
  | { key: string; kind: "tensor"; shape: number[] }
  /** Targets: class ids (int32), or float values with their shape (a float target tensor). */
  | { key: string; kind: "targets"; scale: number; shape?: number[] };

const enc = new TextEncoder();
const dec = new TextDecoder();

/** The header part of a frame (the body is sent after it as a second part of the same message). */
export function frameHeader(h: FrameHeader): Uint8Array {
  const json = enc.encode(JSON.stringify(h));
  const start = 4 + json.length;
  const padded = (start + 7) & ~7;
  const out = new Uint8Array(padded);
  new DataView(out.buffer).setUint32(0, json.length, true);
  out.set(json, 4);
  return out;
}

export function parseFrame(buf: ArrayBuffer): { header: FrameHeader; body: ArrayBuffer; offset: number; bytes: number } {
  const n = new DataView(buf).getUint32(0, true);
  const header = JSON.parse(dec.decode(new Uint8Array(buf, 4, n))) as FrameHeader;
  const offset = (4 + n + 7) & ~7;
  return { header, body: buf, offset, bytes: buf.byteLength - offset };
}

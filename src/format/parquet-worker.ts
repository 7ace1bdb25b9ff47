/**
 * Entry point of a Parquet encoder thread (see src/format/parquet-encode.ts):
 * each message is one file to encode; the reply carries the finished bytes
 * (transferred, not copied), or the encoder's error message. Stateless
 * between messages apart from parquet-wasm's memory.
 */
import { parentPort } from 'node:worker_threads';
import type { EncodeReply, EncodeRequest } from './parquet-encode.js';
import { encodeIpc, encoderMemoryBytes } from './parquet-encode.js';

const port = parentPort;
if (!port) throw new Error('parquet-worker.js runs only as a worker thread');
port.on('message', (m: EncodeRequest) => {
  let reply: EncodeReply;
  try {
    reply = 'memory' in m ? { id: m.id, ok: true, memoryBytes: encoderMemoryBytes() } : { id: m.id, ok: true, bytes: encodeIpc(m.ipc, m.plan) };
  } catch (err) {
    // Not swallowed: the message goes back to the caller, who rejects with it.
    reply = { id: m.id, ok: false, message: err instanceof Error ? err.message : String(err) };
  }
  port.postMessage(reply, 'bytes' in reply ? [reply.bytes.buffer as ArrayBuffer] : []);
});

// Binary audio frame of the wire contract: 8-byte header (stream, seq; uint32 LE) + PCM s16le.

export const AUDIO_HEADER_BYTES = 8;

export interface DecodedAudioFrame {
  stream: number;
  seq: number;
  pcm: Int16Array;
}

export function encodeAudioFrame(stream: number, seq: number, pcm: Int16Array): Buffer {
  const frame = Buffer.allocUnsafe(AUDIO_HEADER_BYTES + pcm.byteLength);
  frame.writeUInt32LE(stream >>> 0, 0);
  frame.writeUInt32LE(seq >>> 0, 4);
  // Copy the samples as little-endian bytes (every platform Node runs on is LE).
  Buffer.from(pcm.buffer, pcm.byteOffset, pcm.byteLength).copy(frame, AUDIO_HEADER_BYTES);
  return frame;
}

export function decodeAudioFrame(data: Uint8Array): DecodedAudioFrame {
  if (data.byteLength < AUDIO_HEADER_BYTES || (data.byteLength - AUDIO_HEADER_BYTES) % 2 !== 0) {
    throw new RangeError(`not an audio frame: ${data.byteLength} bytes`);
  }
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const payload = data.slice(AUDIO_HEADER_BYTES);
  return {
    stream: view.getUint32(0, true),
    seq: view.getUint32(4, true),
    pcm: new Int16Array(payload.buffer, payload.byteOffset, payload.byteLength / 2),
  };
}

#!/usr/bin/env node
// voxline's eSpeak NG synth worker: a separate program spoken to over stdio.
//
// eSpeak NG (via @echogarden/espeak-ng-emscripten) is GPL-3.0; voxline is MIT. Running it
// as its own process keeps the engine from linking GPL code into an embedder's program.
//
// stdin: one JSON command per line: {"op":"synth","job":N,"text":"…","voice":"en-us"}
// stdout: binary frames: u32le payloadBytes, u8 kind, u32le job, payload
//   kind 1 READY  payload JSON {"sampleRate":22050}
//   kind 2 AUDIO  payload PCM s16le mono at sampleRate
//   kind 3 DONE   (no payload)
//   kind 4 ERROR  payload JSON {"message":"…"}
import { createInterface } from 'node:readline';

const READY = 1;
const AUDIO = 2;
const DONE = 3;
const ERROR = 4;

function frame(kind, job, payload) {
  const body = payload ?? Buffer.alloc(0);
  const header = Buffer.allocUnsafe(9);
  header.writeUInt32LE(body.length, 0);
  header.writeUInt8(kind, 4);
  header.writeUInt32LE(job >>> 0, 5);
  process.stdout.write(Buffer.concat([header, body]));
}

function json(value) {
  return Buffer.from(JSON.stringify(value), 'utf8');
}

let createModule;
try {
  ({ default: createModule } = await import('@echogarden/espeak-ng-emscripten'));
} catch {
  process.stderr.write(
    'voxline espeak worker: the optional package @echogarden/espeak-ng-emscripten is not installed\n',
  );
  process.exit(3);
}

const module = await createModule();
const engine = new module.eSpeakNGWorker();
let currentVoice = '';

function useVoice(voice) {
  if (voice === currentVoice) return true;
  if (engine.set_voice(voice) !== 0) return false;
  currentVoice = voice;
  return true;
}

function synthesize(job, text, voice) {
  if (!useVoice(voice)) {
    frame(ERROR, job, json({ message: `espeak has no voice "${voice}"` }));
    return;
  }
  engine.synthesize(text, (samples) => {
    // `samples` views the WASM heap, which the next call overwrites: copy before queueing the write.
    if (job !== 0) frame(AUDIO, job, Buffer.from(new Uint8Array(samples.buffer, samples.byteOffset, samples.byteLength)));
    return 0;
  });
  if (job !== 0) frame(DONE, job);
}

// Pre-warm: load voices and run one throwaway sentence so the first real request is fast.
useVoice('en-us');
synthesize(0, 'Warming up.', 'en-us');
frame(READY, 0, json({ sampleRate: engine.samplerate ?? 22050 }));

const lines = createInterface({ input: process.stdin });
lines.on('line', (line) => {
  let command;
  try {
    command = JSON.parse(line);
  } catch {
    return;
  }
  if (command.op === 'synth') {
    try {
      synthesize(command.job, String(command.text), String(command.voice));
    } catch (error) {
      frame(ERROR, command.job, json({ message: String(error?.message ?? error) }));
    }
  } else if (command.op === 'exit') {
    process.exit(0);
  }
});
lines.on('close', () => process.exit(0));

#!/usr/bin/env node
// voxline's eSpeak NG synth worker: a separate program spoken to over stdio.
//
// eSpeak NG (via @echogarden/espeak-ng-emscripten) is GPL-3.0; voxline is MIT. Running it
// as its own process keeps the engine from linking GPL code into an embedder's program.
//
// stdin: one JSON command per line: {"op":"synth","job":N,"text":"…","voice":"en-us"}
//   (`voice` is eSpeak's own voice name; the provider maps its advertised ids onto them)
// stdout: binary frames: u32le payloadBytes, u8 kind, u32le job, payload
//   kind 1 READY  payload JSON {"sampleRate":22050}
//   kind 2 AUDIO  payload PCM s16le mono at sampleRate
//   kind 3 DONE   (no payload)
//   kind 4 ERROR  payload JSON {"message":"…","code"?:"provider_rejected"}
//
// Text is spoken literally. The package's plain `synthesize` passes eSpeak the flags
// espeakSSML | espeakPHONEMES (fixed in its C++ glue), so client text would be read as SSML
// (`<break time="100000s"/>`: minutes of silence; `<voice>`/`<s xml:lang>`: a voice that
// stayed for the worker's next job) and `[[…]]` as phoneme codes. Its
// `synthesize_and_get_phonemes` calls espeak_Synth with flags 0 (plain text, auto-detected
// UTF-8) and differs only in also writing a phoneme trace to a temporary in-memory file,
// which it deletes; that is the root switch this build offers, so no escaping is needed.
//
// Audio per job is bounded by its text: at most MAX_AUDIO_BASE_SECONDS plus
// MAX_AUDIO_SECONDS_PER_CHAR per character. Real text stays far below (prose ~0.06 s per
// character, digit- and date-heavy text ~0.27, CJK read as "Chinese letter" ~0.32), but a
// text made mostly of characters eSpeak reads out by their long names (Braille patterns:
// up to 3.3 s each) would not. At the bound the worker stops eSpeak (the callback returns 1)
// and ends the job with an ERROR of code provider_rejected, after the audio up to the bound.
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
const sampleRate = engine.samplerate ?? 22050;

const MAX_AUDIO_BASE_SECONDS = 2;
const MAX_AUDIO_SECONDS_PER_CHAR = 0.5;

function synthesize(job, text, voice) {
  // The voice is set for every job (about 1 ms), so nothing a previous job did to eSpeak's
  // voice can carry over; rate, pitch, volume and range are set by the glue on every call.
  if (engine.set_voice(voice) !== 0) {
    frame(ERROR, job, json({ message: `espeak has no voice "${voice}"` }));
    return;
  }
  const maxSamples = Math.ceil((MAX_AUDIO_BASE_SECONDS + MAX_AUDIO_SECONDS_PER_CHAR * text.length) * sampleRate);
  let samplesSoFar = 0;
  let overBound = false;
  engine.synthesize_and_get_phonemes(text, (samples) => {
    const room = maxSamples - samplesSoFar;
    const take = Math.min(samples.length, room);
    samplesSoFar += take;
    // `samples` is the glue's own copy of the WASM heap (HEAP16.slice), so a view of it is safe to queue.
    if (job !== 0 && take > 0) frame(AUDIO, job, Buffer.from(samples.buffer, samples.byteOffset, take * 2));
    if (take < samples.length) {
      overBound = true;
      return 1; // stop eSpeak here
    }
    return 0;
  });
  if (job === 0) return;
  if (overBound) {
    const seconds = MAX_AUDIO_BASE_SECONDS + MAX_AUDIO_SECONDS_PER_CHAR * text.length;
    frame(
      ERROR,
      job,
      json({
        code: 'provider_rejected',
        message: `the text makes more than ${seconds.toFixed(1)} s of audio for its ${text.length} characters (the embedded voice allows ${MAX_AUDIO_BASE_SECONDS} s plus ${MAX_AUDIO_SECONDS_PER_CHAR} s per character)`,
      }),
    );
  } else {
    frame(DONE, job);
  }
}

// Pre-warm: load voices and run one throwaway sentence so the first real request is fast.
synthesize(0, 'Warming up.', 'en-us');
frame(READY, 0, json({ sampleRate }));

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

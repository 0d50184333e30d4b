#!/usr/bin/env node
// voxline's PocketSphinx recognition worker: a separate program spoken to over stdio. It
// loads Debian's libpocketsphinx (0.8+5prealpha API) through koffi, keeps one decoder warm
// and decodes one utterance at a time. Native code runs out of the server's process, so a
// crash or a hang in the library costs one worker, never the server.
//
// argv[2]: JSON {"library","sphinxbase","hmm","lm","dict"} (absolute paths)
// frames both ways: u32le payloadBytes, u8 kind, u32le job, payload
// stdin (server → worker):
//   kind 1 START   payload JSON {"phrases"?: ["turn on the lights", …]} (normalised: [a-z'] words,
//                  one space between them); without phrases the general language model listens
//   kind 2 AUDIO   payload PCM s16le mono 16 kHz
//   kind 3 END     → one FINAL (or ERROR) for the job
//   kind 4 CANCEL  the utterance is dropped; nothing more is sent for the job
// stdout (worker → server):
//   kind 1 READY   payload JSON {"cpuUs","initMs","cmnReset"} (cmnReset: each utterance starts clean, see below)
//   kind 2 PARTIAL payload UTF-8 hypothesis (only when it changed, at most every 100 ms of audio)
//   kind 3 FINAL   payload JSON {"text","cpuUs"}
//   kind 4 ERROR   payload JSON {"message","code"?}
//   kind 5 DROPPED payload JSON {"phrases":[…],"words":[…]} phrases left out of the grammar
//                  because a word is not in the dictionary (the job goes on with the rest)
//
// Stdout is the protocol, so nothing else may write to it: the protocol gets its own copy of
// fd 1 and fd 1 itself is pointed at stderr before the library loads, so a stray printf in
// native code (or a console.log here) lands in stderr. The library's log goes to /dev/null.
// Every command for a job arrives in order on one pipe, so a CANCEL (or the next START) has
// reset the decoder before the next job's audio: nothing of one turn reaches the next.
import net from 'node:net';
import koffi from 'koffi';

// The frame kinds, also in sphinxProcess.ts: the worker runs as plain .mjs without tsx, so it
// cannot import them; change both together.
const IN_START = 1;
const IN_AUDIO = 2;
const IN_END = 3;
const IN_CANCEL = 4;
const OUT_READY = 1;
const OUT_PARTIAL = 2;
const OUT_FINAL = 3;
const OUT_ERROR = 4;
const OUT_DROPPED = 5;
const HEADER = 9;
/** A frame larger than this is a broken server, not audio (the server sends ≤ 64 KB). */
const MAX_FRAME = 4 * 1024 * 1024;
/** Partials are looked for after this many samples of audio (100 ms at 16 kHz). */
const PARTIAL_EVERY_SAMPLES = 1600;
/** Grammars kept compiled in the decoder (keyed by their text). */
const MAX_GRAMMARS = 16;
/** Dictionary answers kept (a word's presence does not change while the decoder lives). */
const MAX_WORDS = 20_000;

const paths = JSON.parse(process.argv[2] ?? '{}');

let out = process.stdout;
try {
  const libc = koffi.load('libc.so.6');
  const dup = libc.func('int dup(int)');
  const dup2 = libc.func('int dup2(int, int)');
  const protocolFd = dup(1);
  if (protocolFd >= 0 && dup2(2, 1) === 1) out = new net.Socket({ fd: protocolFd, readable: false, writable: true });
} catch {
  // No glibc (musl): stdout stays the protocol; the library's log still goes to /dev/null.
}

function frame(kind, job, payload) {
  const body = payload ?? Buffer.alloc(0);
  const header = Buffer.allocUnsafe(HEADER);
  header.writeUInt32LE(body.length, 0);
  header.writeUInt8(kind, 4);
  header.writeUInt32LE(job >>> 0, 5);
  out.write(Buffer.concat([header, body]));
}
const json = (value) => Buffer.from(JSON.stringify(value), 'utf8');
const cpuUs = () => {
  const u = process.cpuUsage();
  return u.user + u.system;
};

const began = performance.now();
const sphinxbase = koffi.load(paths.sphinxbase);
const pocketsphinx = koffi.load(paths.library);
const ps_args = pocketsphinx.func('void *ps_args(void)');
const cmd_ln_parse_r = sphinxbase.func('void *cmd_ln_parse_r(void *inout, void *defn, int argc, const char **argv, int strict)');
const ckd_free = sphinxbase.func('void ckd_free(void *ptr)');
const ps_init = pocketsphinx.func('void *ps_init(void *config)');
const ps_lookup_word = pocketsphinx.func('void *ps_lookup_word(void *ps, const char *word)');
const ps_set_jsgf_string = pocketsphinx.func('int ps_set_jsgf_string(void *ps, const char *name, const char *jsgf)');
const ps_set_search = pocketsphinx.func('int ps_set_search(void *ps, const char *name)');
const ps_unset_search = pocketsphinx.func('int ps_unset_search(void *ps, const char *name)');
const ps_get_search = pocketsphinx.func('const char *ps_get_search(void *ps)');
const ps_start_utt = pocketsphinx.func('int ps_start_utt(void *ps)');
const ps_process_raw = pocketsphinx.func('int ps_process_raw(void *ps, const int16_t *data, size_t n, int no_search, int full_utt)');
const ps_end_utt = pocketsphinx.func('int ps_end_utt(void *ps)');
const ps_get_hyp = pocketsphinx.func('const char *ps_get_hyp(void *ps, _Out_ int *score)');
const ps_get_feat = pocketsphinx.func('void *ps_get_feat(void *ps)');
const cmn_live_get = sphinxbase.func('void cmn_live_get(void *cmn, _Out_ uint8_t *vec)');
const cmn_live_set = sphinxbase.func('void cmn_live_set(void *cmn, const uint8_t *vec)');

const argv = ['-hmm', paths.hmm, '-lm', paths.lm, '-dict', paths.dict, '-logfn', '/dev/null'];
const config = cmd_ln_parse_r(null, ps_args(), argv.length, argv, 1);
if (!config) {
  process.stderr.write('voxline pocketsphinx worker: the decoder configuration was refused\n');
  process.exit(3);
}
const decoder = ps_init(config);
if (!decoder) {
  process.stderr.write('voxline pocketsphinx worker: the decoder did not start (model files?)\n');
  process.exit(3);
}
// Cepstral mean normalisation is the one state the decoder carries from one utterance to the
// next: the mean is re-estimated at every ps_end_utt, and the first utterance alone sets it.
// Half a cancelled sentence moved it far enough that the next, clean sentence was not
// recognised at all. So every utterance starts from the model's initial mean (feat.params
// -cmninit, with the weight cmn_live_set gives it): a turn is decoded as by a fresh decoder,
// whatever other turns, sessions or cancels came before. The library offers no getter for
// the CMN object: it is read from feat_t (sphinxbase 0.8+5prealpha, LP64), and the layout is
// checked (cepsize 13, veclen == cepsize) before it is trusted; if the check fails the worker
// says so in READY and the server replaces a worker instead of reusing it after a cancel.
const FEAT_CEPSIZE_OFFSET = 16;
const FEAT_CMN_STRUCT_OFFSET = 88;
const CMN_VECLEN_OFFSET = 28;
function findCmn() {
  try {
    const feat = ps_get_feat(decoder);
    if (!feat) return null;
    const featBytes = new DataView(Uint8Array.from(koffi.decode(feat, koffi.array('uint8_t', 96))).buffer);
    const cepsize = featBytes.getInt32(FEAT_CEPSIZE_OFFSET, true);
    const cmn = featBytes.getBigUint64(FEAT_CMN_STRUCT_OFFSET, true);
    if (cepsize !== 13 || cmn === 0n) return null;
    const cmnBytes = new DataView(Uint8Array.from(koffi.decode(cmn, koffi.array('uint8_t', 32))).buffer);
    if (cmnBytes.getInt32(CMN_VECLEN_OFFSET, true) !== cepsize) return null;
    const initial = new Uint8Array(cepsize * 4); // mfcc_t is 4 bytes (float, or int32 in fixed point): copied, never read
    cmn_live_get(cmn, initial);
    return { cmn, initial };
  } catch {
    return null;
  }
}
const cmnState = findCmn();
function resetCmn() {
  if (cmnState) cmn_live_set(cmnState.cmn, cmnState.initial);
}

/** The general language model's search, made by ps_init from -lm. */
const lmSearch = ps_get_search(decoder) ?? '_default';

const knownWords = new Map();
function inDictionary(word) {
  let known = knownWords.get(word);
  if (known === undefined) {
    const phones = ps_lookup_word(decoder, word);
    known = phones !== null && phones !== 0n && phones !== 0;
    if (known) ckd_free(phones);
    if (knownWords.size >= MAX_WORDS) knownWords.clear();
    knownWords.set(word, known);
  }
  return known;
}

/** jsgf text → search name, oldest first. */
const grammars = new Map();
let nextGrammar = 1;
function grammarSearch(phrases) {
  const jsgf = `#JSGF V1.0;\ngrammar voxline;\npublic <phrase> = ${phrases.join(' | ')};\n`;
  const cached = grammars.get(jsgf);
  if (cached) {
    grammars.delete(jsgf); // most recently used last
    grammars.set(jsgf, cached);
    return cached;
  }
  const name = `voxline_g${nextGrammar++}`;
  if (ps_set_jsgf_string(decoder, name, jsgf) < 0) throw new Error('the grammar was refused by the decoder');
  grammars.set(jsgf, name);
  return name;
}
function evictGrammars(current) {
  for (const [jsgf, name] of grammars) {
    if (grammars.size <= MAX_GRAMMARS) break;
    if (name === current) continue;
    ps_unset_search(decoder, name);
    grammars.delete(jsgf);
  }
}

/** The job whose utterance is open in the decoder (0: none). */
let job = 0;
let samplesSinceLook = 0;
let lastHyp = '';

function hypothesis() {
  return ps_get_hyp(decoder, [0]) ?? '';
}

function drop() {
  if (job !== 0) ps_end_utt(decoder);
  job = 0;
}

function start(id, command) {
  drop();
  let search = lmSearch;
  if (Array.isArray(command.phrases)) {
    const kept = [];
    const dropped = [];
    const unknown = new Set();
    for (const phrase of command.phrases) {
      const words = String(phrase).split(' ').filter((w) => /^[a-z']+$/.test(w));
      const missing = words.filter((w) => !inDictionary(w));
      if (words.length === 0 || missing.length > 0) {
        dropped.push(phrase);
        for (const w of missing) unknown.add(w);
      } else kept.push(words.join(' '));
    }
    if (dropped.length > 0) frame(OUT_DROPPED, id, json({ phrases: dropped, words: [...unknown] }));
    if (kept.length === 0) {
      frame(OUT_ERROR, id, json({ code: 'recognizer_failed', message: 'none of the phrases has all its words in the dictionary' }));
      return;
    }
    search = grammarSearch(kept);
  }
  if (ps_set_search(decoder, search) < 0) throw new Error(`the decoder cannot switch to search ${search}`);
  evictGrammars(search);
  resetCmn();
  if (ps_start_utt(decoder) < 0) throw new Error('the decoder did not start an utterance');
  job = id;
  samplesSinceLook = 0;
  lastHyp = '';
}

function audio(id, payload) {
  if (id !== job) return; // a dropped or failed job's audio
  const n = payload.length >> 1;
  if (n === 0) return;
  // Int16Array needs an even byte offset; a frame's payload may sit anywhere in the read buffer.
  const samples = payload.byteOffset % 2 === 0 ? new Int16Array(payload.buffer, payload.byteOffset, n) : new Int16Array(payload.buffer.slice(payload.byteOffset, payload.byteOffset + n * 2));
  if (ps_process_raw(decoder, samples, n, 0, 0) < 0) throw new Error('the decoder refused the audio');
  samplesSinceLook += n;
  if (samplesSinceLook >= PARTIAL_EVERY_SAMPLES) {
    samplesSinceLook = 0;
    const hyp = hypothesis();
    if (hyp !== '' && hyp !== lastHyp) {
      lastHyp = hyp;
      frame(OUT_PARTIAL, id, Buffer.from(hyp, 'utf8'));
    }
  }
}

function end(id) {
  if (id !== job) return; // already failed (its ERROR was sent) or cancelled
  job = 0;
  if (ps_end_utt(decoder) < 0) throw new Error('the decoder did not end the utterance');
  frame(OUT_FINAL, id, json({ text: hypothesis(), cpuUs: cpuUs() }));
}

function handle(kind, id, payload) {
  try {
    if (kind === IN_START) {
      let command = {};
      try {
        command = JSON.parse(payload.toString('utf8'));
      } catch {
        /* a START without a readable payload listens with the language model */
      }
      start(id, command);
    } else if (kind === IN_AUDIO) audio(id, payload);
    else if (kind === IN_END) end(id);
    else if (kind === IN_CANCEL) {
      if (id === job) drop();
    }
  } catch (error) {
    try {
      drop();
    } catch {
      /* the decoder is past helping; the server restarts a worker that keeps failing */
    }
    frame(OUT_ERROR, id, json({ code: 'recognizer_failed', message: String(error?.message ?? error) }));
  }
}

// Warm up: one short utterance through the language model pages the model in.
start(0, {});
audio(0, Buffer.alloc(16_000));
job = 0;
ps_end_utt(decoder);
frame(OUT_READY, 0, json({ cpuUs: cpuUs(), initMs: performance.now() - began, cmnReset: cmnState !== null }));

let buffer = Buffer.alloc(0);
process.stdin.on('data', (data) => {
  buffer = buffer.length === 0 ? data : Buffer.concat([buffer, data]);
  while (buffer.length >= HEADER) {
    const length = buffer.readUInt32LE(0);
    if (length > MAX_FRAME) {
      process.stderr.write('voxline pocketsphinx worker: oversized frame; the server is out of step\n');
      process.exit(2);
    }
    if (buffer.length < HEADER + length) return;
    const kind = buffer.readUInt8(4);
    const id = buffer.readUInt32LE(5);
    const payload = buffer.subarray(HEADER, HEADER + length);
    buffer = buffer.subarray(HEADER + length);
    handle(kind, id, payload);
  }
});
process.stdin.on('end', () => process.exit(0));

// lamina's Node.js runtime client: the process that runs inside every execution environment of a
// nodejsNN.x function. lamina starts it as `node $LAMBDA_RUNTIME_DIR/bootstrap.mjs` (cwd = task root).
//
// It does what AWS's runtime interface client (aws-lambda-nodejs-runtime-interface-client) does,
// on Node built-ins only:
//   * init: load the module named by _HANDLER from LAMBDA_TASK_ROOT (CommonJS or ES module) and
//     report failures to /runtime/init/error (Runtime.ImportModuleError, ...), then exit 129;
//   * loop: GET /runtime/invocation/next, call the handler (async, sync or callback style), POST
//     the result to /invocation/{id}/response or the error to /invocation/{id}/error;
//   * console: console.* writes "<ISO time>\t<request id>\t<LEVEL>\t<message>" lines to stdout
//     (or JSON records when AWS_LAMBDA_LOG_FORMAT=JSON), flushed before each result is posted.
// Paths always come from the environment: in lamina's fallback mode they are host paths.

import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import util from 'node:util';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';

const env = process.env;
const API = env.AWS_LAMBDA_RUNTIME_API ?? '127.0.0.1:9001';
const API_HOST = API.slice(0, API.lastIndexOf(':'));
const API_PORT = Number(API.slice(API.lastIndexOf(':') + 1));
// lamina's socket pair: the Runtime API as frames over a Unix socket this process inherited (blocking;
// ChannelClient below). Not for the handler.
const CHANNEL_FD = /^\d+$/.test(env._LAMINA_RUNTIME_FD ?? '') ? Number(env._LAMINA_RUNTIME_FD) : null;
delete env._LAMINA_RUNTIME_FD;
const RUNTIME = '/2018-06-01/runtime';
const TASK_ROOT = path.resolve(env.LAMBDA_TASK_ROOT || process.cwd());
const USER_AGENT = `lamina-nodejs/${process.versions.node}`;
const REQUEST_ID = Symbol.for('aws.lambda.runtime.requestId');

// ---------------------------------------------------------------------------------------------
// Runtime API clients.

/** Over loopback TCP: one keep-alive socket with Nagle off, speaking just enough HTTP/1.1
 *  (Content-Length bodies, keep-alive); requests are strictly sequential. node's http client costs
 *  ~100 us per round trip. Used where lamina hands over no socket pair (and for crash reports). */
class RawClient {
  constructor(host, port) {
    this.host = host;
    this.port = port;
    this.prefix = `Host: ${host}:${port}\r\nUser-Agent: ${USER_AGENT}\r\n`;
    this.socket = null;
    this.buf = Buffer.alloc(0);
    this.waiters = []; // replies arrive in request order (HTTP/1.1 pipelining)
    this.prefetched = null; // a GET /next sent together with the last result
  }

  connect() {
    return new Promise((resolve, reject) => {
      const socket = net.createConnection({ host: this.host, port: this.port }, () => {
        socket.off('error', reject);
        socket.setNoDelay(true);
        socket.on('data', (chunk) => this.onData(chunk));
        socket.on('error', (err) => this.fail(err));
        socket.on('close', () => this.fail(new Error('Runtime API closed the connection')));
        this.socket = socket;
        this.buf = Buffer.alloc(0);
        resolve(socket);
      });
      socket.once('error', reject);
    });
  }

  onData(chunk) {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    while (this.waiters.length) {
      const end = this.buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const lines = this.buf.toString('latin1', 0, end).split('\r\n');
      const headers = {};
      for (let i = 1; i < lines.length; i++) {
        const at = lines[i].indexOf(':');
        if (at > 0) headers[lines[i].slice(0, at).trim().toLowerCase()] = lines[i].slice(at + 1).trim();
      }
      const total = end + 4 + (parseInt(headers['content-length'] || '0', 10) || 0);
      if (this.buf.length < total) return;
      const reply = {
        status: parseInt(lines[0].split(' ')[1], 10),
        headers,
        body: this.buf.toString('utf8', end + 4, total),
      };
      this.buf = this.buf.subarray(total);
      const { resolve } = this.waiters.shift();
      if ((headers.connection || '').toLowerCase() === 'close') this.drop();
      // idle: must not keep the event loop alive (callbackWaitsForEmptyEventLoop)
      else if (!this.waiters.length) this.socket?.unref();
      resolve(reply);
    }
  }

  drop() {
    const socket = this.socket;
    this.socket = null;
    if (socket) socket.destroy();
  }

  fail(err) {
    this.socket = null;
    this.prefetched = null;
    for (const { reject } of this.waiters.splice(0)) reject(err);
  }

  encode(method, urlPath, body, headers) {
    let head = `${method} ${urlPath} HTTP/1.1\r\n${this.prefix}`;
    for (const name in headers) head += `${name}: ${headers[name]}\r\n`;
    const payload = body === undefined ? null : Buffer.isBuffer(body) ? body : Buffer.from(body, 'utf8');
    head += `Content-Length: ${payload ? payload.length : 0}\r\n\r\n`;
    return payload ? Buffer.concat([Buffer.from(head, 'latin1'), payload]) : Buffer.from(head, 'latin1');
  }

  /** Send requests in one write; one promise per reply. */
  async send(requests) {
    if (!this.socket) await this.connect();
    const replies = requests.map(() => new Promise((resolve, reject) => this.waiters.push({ resolve, reject })));
    this.socket.ref();
    const chunks = requests.map((r) => this.encode(...r));
    this.socket.write(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks));
    return replies;
  }

  async request(method, urlPath, body, headers) {
    if (method === 'GET' && urlPath === NEXT && this.prefetched) {
      const next = this.prefetched;
      this.prefetched = null;
      return next;
    }
    if (method === 'POST' && urlPath.startsWith(INVOCATION) && this.waiters.length === 0) {
      // A result: ask for the next event in the same write (lamina's server answers both together).
      const [posted, next] = await this.send([[method, urlPath, body, headers], ['GET', NEXT, undefined, {}]]);
      next.catch(() => {}); // a failure surfaces when the loop asks for it
      this.prefetched = next;
      return posted;
    }
    const [reply] = await this.send([[method, urlPath, body, headers]]);
    return reply;
  }
}

/** On lamina's socket pair (inherited as _LAMINA_RUNTIME_FD): the same requests as frames
 *  (lamina/runtime_api/frames.py: kind (1 byte), the lengths of two fields and a body (uint32 LE), then
 *  those; a result gets no answer, /next an event), written and read with blocking system calls on the
 *  descriptor itself, no net.Socket: a result and the next /next leave in one write, and the process
 *  sleeps in read() until the event comes, as a frozen Lambda environment would. Node's stream machinery
 *  (a JS 'data' event, Readable and Writable state per message) was most of the runtime's CPU per
 *  invocation while 64 environments shared two cores: V8 runs each process's copy of that code
 *  unoptimized for thousands of invocations. The event loop gets one turn before each wait
 *  (`turn`), so what a handler left to run (timers, I/O callbacks) runs between invocations as it did
 *  while a /next was pending. */
class ChannelClient {
  constructor(fd) {
    this.fd = fd;
    this.buf = Buffer.allocUnsafe(1 << 16);
    this.have = 0; // bytes of buf holding unread frames
    this.owed = 0; // answered requests sent and not read yet
  }

  write(data) {
    for (let at = 0; at < data.length;) at += fs.writeSync(this.fd, data, at, data.length - at);
  }

  /** Room for `need` bytes in buf, the unread ones kept. */
  reserve(need) {
    if (need <= this.buf.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(need, this.buf.length * 2));
    this.buf.copy(bigger, 0, 0, this.have);
    this.buf = bigger;
  }

  /** The next answer (an event, an assignment, a refusal), read in blocking calls. */
  readReply() {
    for (;;) {
      const buf = this.buf;
      if (this.have >= 13) {
        const la = buf.readUInt32LE(1), lb = buf.readUInt32LE(5), lc = buf.readUInt32LE(9);
        const total = 13 + la + lb + lc;
        if (this.have >= total) {
          const kind = buf[0], a = buf.toString('utf8', 13, 13 + la), body = buf.toString('utf8', 13 + la + lb, total);
          buf.copy(buf, 0, total, this.have);
          this.have -= total;
          if (kind === 0x78) continue; // x: a refused result; nothing to do about it here (as a 202 is not read)
          this.owed--;
          return frameReply(kind, a, body);
        }
        this.reserve(total);
      } else if (this.have === buf.length) {
        this.reserve(buf.length * 2);
      }
      const n = fs.readSync(this.fd, this.buf, this.have, this.buf.length - this.have, null);
      if (n === 0) throw new ChannelLost('Runtime API closed the socket pair');
      this.have += n;
    }
  }

  /** A result (kind R) or error (E) of invocation `id`: one frame made in one buffer, sent with a /next
   *  in the same write unless one is already owed (lamina answers it when an event comes). */
  post(kind, id, type, body) {
    const la = Buffer.byteLength(id), lb = type.length, lc = Buffer.byteLength(body);
    const end = 13 + la + lb + lc;
    const next = this.owed === 0;
    const out = Buffer.allocUnsafe(next ? end + NEXT_FRAME.length : end);
    out[0] = kind;
    out.writeUInt32LE(la, 1);
    out.writeUInt32LE(lb, 5);
    out.writeUInt32LE(lc, 9);
    out.write(id, 13, 'utf8');
    out.write(type, 13 + la, 'latin1');
    out.write(body, 13 + la + lb, 'utf8');
    if (next) {
      NEXT_FRAME.copy(out, end);
      this.owed++;
    }
    this.write(out);
  }

  /** The next event: the /next sent with the last result, or one asked for now. The event loop gets its
   *  turn first (see `turn`). */
  async next() {
    if (this.owed === 0) {
      this.write(NEXT_FRAME);
      this.owed++;
    }
    const turning = turn();
    if (turning) await turning;
    return this.readReply();
  }

  /** lamina's assignment of a function to this standby. */
  standby() {
    this.write(STANDBY_FRAME);
    this.owed++;
    return this.readReply();
  }
}

/** What keeps the event loop alive between invocations on its own: stdout's and stderr's pipes (made
 *  before the first invocation, see `loop`). */
let idleResources = 0;

class ChannelLost extends Error {}

/** Whether `err` says the socket pair is gone (or never was one): the client goes on over TCP. */
const channelLost = (err) =>
  err instanceof ChannelLost || ['EBADF', 'ENOTSOCK', 'EPIPE', 'ECONNRESET', 'ENOTCONN'].includes(err?.code);

/** A result or error on the socket pair; false when the pair is gone (then the caller posts it over TCP:
 *  lamina takes it while the invocation is still its environment's). */
function postOnChannel(kind, id, type, body) {
  try {
    channel.post(kind, id, type, body);
    return true;
  } catch (err) {
    dropChannel(err);
    return false;
  }
}

/** After `err` on the socket pair: rethrown unless it says the pair is gone (or never was one); then
 *  the listener's address (HTTP over TCP) from here on. */
function dropChannel(err) {
  if (!channelLost(err)) throw err;
  channel = null;
}

/** One turn of the event loop (its due timers, ready I/O, setImmediate callbacks) when more than the
 *  idle resources keep it alive (a ref'd timer, socket or request of the handler's); else nothing
 *  could run in it, and the wait starts at once. */
const turn = () =>
  process.getActiveResourcesInfo().length > idleResources ? new Promise((resolve) => setImmediate(resolve)) : null;

/** A request frame with no fields and no body (N: /next, S: /lamina/standby). */
function emptyFrame(kind) {
  const out = Buffer.alloc(13);
  out.write(kind, 0, 'latin1');
  return out;
}

/** An answer frame as the HTTP API's reply: V an event, A an assignment (NAME=VALUE\0...), X a refusal. */
function frameReply(kind, a, body) {
  if (kind === 0x56) {
    const f = a.split('\0');
    const headers = {
      'lambda-runtime-aws-request-id': f[0], 'lambda-runtime-deadline-ms': f[1],
      'lambda-runtime-invoked-function-arn': f[2], 'lambda-runtime-trace-id': f[3],
    };
    if (f[4]) headers['lambda-runtime-client-context'] = f[4];
    if (f[5]) headers['lambda-runtime-cognito-identity'] = f[5];
    return { status: 200, headers, body };
  }
  if (kind === 0x41) {
    const environment = {};
    for (const item of body.split('\0')) {
      const at = item.indexOf('=');
      if (at > 0) environment[item.slice(0, at)] = item.slice(at + 1);
    }
    return { status: 200, headers: {}, body: JSON.stringify({ environment }) };
  }
  return { status: parseInt(a, 10) || 500, headers: {}, body };
}

const NEXT = `${RUNTIME}/invocation/next`;
const INVOCATION = `${RUNTIME}/invocation/`;
const INIT_ERROR = `${RUNTIME}/init/error`;
const STANDBY = '/2018-06-01/lamina/standby';
const NEXT_FRAME = emptyFrame('N');
const STANDBY_FRAME = emptyFrame('S');
const raw = new RawClient(API_HOST, API_PORT);
/** The socket pair's client while it works; after a failure on it, TCP (`raw`). */
let channel = CHANNEL_FD !== null ? new ChannelClient(CHANNEL_FD) : null;

/** One request to the Runtime API; resolves to {status, headers, body} once the reply has ended.
 *  `viaAgent: false` uses a fresh connection (needed while a long-polling /next holds the loop's). */
async function call(method, urlPath, body, headers = {}, viaAgent = true) {
  if (body !== undefined) headers['Content-Type'] ??= 'application/json';
  if (viaAgent) {
    if (channel !== null && (urlPath === NEXT || urlPath === STANDBY)) { // results: postOnChannel
      try {
        return await (urlPath === NEXT ? channel.next() : channel.standby());
      } catch (err) {
        dropChannel(err);
      }
    }
    try {
      return await raw.request(method, urlPath, body, headers);
    } catch (err) {
      raw.drop(); // the idle keep-alive connection was dropped: reconnect once
      return raw.request(method, urlPath, body, headers);
    }
  }
  return new Promise((resolve, reject) => {
    if (body !== undefined) headers['Content-Length'] = Buffer.byteLength(body);
    headers['User-Agent'] = USER_AGENT;
    const req = http.request({ host: API_HOST, port: API_PORT, method, path: urlPath, headers, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (chunk) => chunks.push(chunk));
      res.on('end', () =>
        resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

// ---------------------------------------------------------------------------------------------
// Errors, shaped like the RIC's.

class RuntimeError extends Error {
  constructor(type, message, stack) {
    super(message);
    // Not enumerable (so it stays out of logged JSON); the stack header is rendered lazily and
    // still reads "<type>: <message>".
    Object.defineProperty(this, 'name', { value: type, writable: true, configurable: true });
    if (stack !== undefined) this.stack = stack;
  }
}

const isErrorLike = (e) =>
  util.types.isNativeError(e) ||
  (e != null && typeof e.name === 'string' && typeof e.message === 'string' && typeof e.stack === 'string');

/** The JSON body POSTed to /error: {errorType, errorMessage, trace}. */
function errorBody(err) {
  try {
    if (isErrorLike(err)) {
      return {
        errorType: err.name || err.constructor?.name || 'Error',
        errorMessage: err.message,
        trace: typeof err.stack === 'string' ? err.stack.split('\n') : [],
      };
    }
    return { errorType: typeof err, errorMessage: String(err), trace: [] };
  } catch {
    return {
      errorType: 'handled',
      errorMessage:
        'callback called with Error argument, but there was a problem while retrieving one or more of its message, name, and stack',
      trace: [],
    };
  }
}

/** "\t{json}" with name, message, code, own enumerable fields and the stack as an array (RIC's toFormatted). */
function formatted(err) {
  const replacer = (_key, value) => {
    if (!(value instanceof Error)) return value;
    const out = { errorType: value.name, errorMessage: value.message, code: value.code, ...value };
    if (typeof value.stack === 'string') out.stack = value.stack.split('\n');
    return out;
  };
  try {
    return '\t' + JSON.stringify(err, replacer);
  } catch {
    return '\t' + JSON.stringify(errorBody(err));
  }
}

// ---------------------------------------------------------------------------------------------
// Console: one write per call; stdout writes to a pipe or file complete synchronously on Linux,
// and stdioFlushed() covers the rare case where the kernel buffer was full.

const LEVELS = { TRACE: 1, DEBUG: 2, INFO: 3, WARN: 4, ERROR: 5, FATAL: 6 };
let MIN_LEVEL = LEVELS.TRACE;
let JSON_LOGS = false;
function readLogSettings() {
  MIN_LEVEL = LEVELS[(env.AWS_LAMBDA_LOG_LEVEL ?? '').toUpperCase()] ?? LEVELS.TRACE;
  JSON_LOGS = (env.AWS_LAMBDA_LOG_FORMAT ?? '').toUpperCase() === 'JSON';
}
readLogSettings();

function logLine(level, args) {
  const time = new Date().toISOString();
  const requestId = globalThis[REQUEST_ID];
  if (!JSON_LOGS) return `${time}\t${requestId}\t${level}\t${util.format(...args)}\n`;
  const record = { timestamp: time, level, requestId };
  const error = args.find((a) => a instanceof Error);
  record.message = args.length === 1 && !error ? args[0] : util.format(...args);
  if (error) {
    record.errorType = error.constructor?.name ?? 'UnknownError';
    record.errorMessage = error.message;
    record.stackTrace = typeof error.stack === 'string' ? error.stack.split('\n') : [];
  }
  try {
    return JSON.stringify(record) + '\n';
  } catch {
    record.message = util.format(...args);
    return JSON.stringify(record) + '\n';
  }
}

const logger = (level) =>
  LEVELS[level] >= MIN_LEVEL ? (...args) => void process.stdout.write(logLine(level, args)) : () => {};
console.trace = logger('TRACE');
console.debug = logger('DEBUG');
console.info = console.log = logger('INFO');
console.warn = logger('WARN');
console.error = logger('ERROR');
console.fatal = logger('FATAL');

/** "<label> \t{json}" on the ERROR level, as the RIC logs invoke and init failures. */
function logError(label, err) {
  const error = err instanceof Error ? err : new Error(String(err));
  if (JSON_LOGS) console.error(error);
  else console.error(label, formatted(error));
}

/** null when stdout/stderr have nothing buffered (the usual case), else a promise for the flush. */
function stdioFlushed() {
  const { stdout, stderr } = process;
  if (stdout.writableLength === 0 && stderr.writableLength === 0) return null; // no array made per invoke
  const pending = [stdout, stderr].filter((s) => s.writableLength > 0);
  return Promise.all(pending.map((s) => new Promise((resolve) => s.write('', resolve))));
}

// ---------------------------------------------------------------------------------------------
// Posting results.

async function postResponse(id, result) {
  let body;
  try {
    body = JSON.stringify(result === undefined ? null : result);
  } catch {
    return postError(id, new Error('Unable to stringify response body'));
  }
  const flushed = stdioFlushed();
  if (flushed) await flushed;
  if (channel !== null && postOnChannel(0x52, id, 'application/json', body)) return; // R
  await call('POST', `${RUNTIME}/invocation/${encodeURIComponent(id)}/response`, body);
}

async function postError(id, err, { log = true, viaAgent = true } = {}) {
  if (log) logError('Invoke Error', err);
  await stdioFlushed();
  const body = JSON.stringify(errorBody(err));
  if (channel !== null && viaAgent && postOnChannel(0x45, id, '', body)) return; // E
  await call('POST', `${RUNTIME}/invocation/${encodeURIComponent(id)}/error`, body, {}, viaAgent);
}

async function postInitError(err) {
  const payload = errorBody(err);
  await stdioFlushed();
  await call('POST', INIT_ERROR, JSON.stringify(payload), {
    'Lambda-Runtime-Function-Error-Type': payload.errorType,
  }, false);
}

// ---------------------------------------------------------------------------------------------
// Loading the handler.

const isFile = (file) => fs.statSync(file, { throwIfNoEntry: false })?.isFile() ?? false;

/** Nearest package.json, from `dir` up to the task root (or "/" for code outside it), says "type": "module". */
function packageIsModule(dir) {
  const insideTaskRoot = dir === TASK_ROOT || dir.startsWith(TASK_ROOT + path.sep);
  for (;;) {
    if (path.basename(dir) === 'node_modules') return false;
    const manifest = path.join(dir, 'package.json');
    if (isFile(manifest)) {
      try {
        return JSON.parse(fs.readFileSync(manifest, 'utf8'))?.type === 'module';
      } catch (e) {
        console.warn(`${manifest} cannot be read, it will be ignored for ES module detection purposes.`, e);
        return false;
      }
    }
    const parent = path.dirname(dir);
    if ((insideTaskRoot && dir === TASK_ROOT) || parent === dir) return false;
    dir = parent;
  }
}

const isEsm = (file) =>
  file.endsWith('.mjs') || (file.endsWith('.js') && packageIsModule(path.dirname(file)));

async function loadFile(file) {
  if (isEsm(file)) return import(pathToFileURL(file).href);
  try {
    return createRequire(file)(file);
  } catch (e) {
    // Node decided it is an ES module after all (a package.json above the task root).
    if (e?.code === 'ERR_REQUIRE_ESM') return import(pathToFileURL(file).href);
    throw e;
  }
}

async function loadModule(moduleRoot, name) {
  const base = path.resolve(TASK_ROOT, moduleRoot, name);
  try {
    for (const ext of ['', '.js', '.mjs', '.cjs']) {
      if (isFile(base + ext)) return await loadFile(base + ext);
    }
    // Last resort, like the RIC: node resolution (node_modules, NODE_PATH) from the task root.
    const resolved = createRequire(import.meta.url).resolve(name, {
      paths: [TASK_ROOT, path.resolve(TASK_ROOT, moduleRoot)],
    });
    return await loadFile(resolved);
  } catch (e) {
    if (e instanceof SyntaxError) throw new RuntimeError('Runtime.UserCodeSyntaxError', String(e), e.stack);
    if (e?.code === 'MODULE_NOT_FOUND' || e?.code === 'ERR_MODULE_NOT_FOUND') {
      throw new RuntimeError('Runtime.ImportModuleError', String(e));
    }
    throw e;
  }
}

const CALLBACK_REMOVED =
  'ERROR: AWS Lambda has removed support for callback-based function handlers starting with Node.js 24. You need to modify this function to use a supported handler signature to use Node.js 24 or later. For more information see https://docs.aws.amazon.com/lambda/latest/dg/nodejs-handler.html.';

/** `_HANDLER` = "dir/file.export": the file is everything up to the last dot of the last segment. */
async function loadHandler() {
  const full = env._HANDLER ?? '';
  if (full.includes('..')) {
    throw new RuntimeError(
      'Runtime.MalformedHandlerName',
      `'${full}' is not a valid handler name. Use absolute paths when specifying root directories in handler names.`,
    );
  }
  const base = path.basename(full);
  const moduleRoot = full.slice(0, full.length - base.length);
  const dot = base.lastIndexOf('.');
  if (dot < 1 || dot === base.length - 1) throw new RuntimeError('Runtime.MalformedHandlerName', 'Bad handler');

  const mod = await loadModule(moduleRoot, base.slice(0, dot));
  const handler = mod?.[base.slice(dot + 1)];
  if (!handler) throw new RuntimeError('Runtime.HandlerNotFound', `${full} is undefined or not exported`);
  if (typeof handler !== 'function') throw new RuntimeError('Runtime.HandlerNotFound', `${full} is not a function`);
  const major = Number(/nodejs(\d+)/.exec(env.AWS_EXECUTION_ENV ?? '')?.[1] ?? 0);
  if (major >= 24 && handler.length >= 3) throw new RuntimeError('Runtime.CallbackHandlerDeprecated', CALLBACK_REMOVED);
  return handler;
}

// ---------------------------------------------------------------------------------------------
// Invocations.

/** The invocation whose result has not been posted yet (for crash reports), or null. */
let pending = null;
/** Runs when the event loop drains: callbackWaitsForEmptyEventLoop, or a handler that never answers. */
let onEmptyLoop = null;
process.on('beforeExit', () => {
  const run = onEmptyLoop;
  onEmptyLoop = null;
  run?.();
});

function parseJson(text, name) {
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`Cannot parse ${name} as json: ${e}`);
  }
}

/** _X_AMZN_TRACE_ID's setter that does not leak (native/lamina_env.c: a buffer handed once to putenv and
 *  rewritten in place; setenv keeps every value it was given, ~1 MB per 10,000 invocations); null
 *  without the addon, and process.env is set as AWS's client does. */
const setTrace = (() => {
  try {
    return createRequire(import.meta.url)('./lamina-env.node').setTrace;
  } catch {
    return null;
  }
})();

/** What a handler's context takes from the environment, read once (process.env reads are calls into
 *  the C++ side, five per invocation otherwise): after a standby's assignment, before the first event. */
let statics = null;
function contextStatics() {
  return {
    functionName: env.AWS_LAMBDA_FUNCTION_NAME,
    functionVersion: env.AWS_LAMBDA_FUNCTION_VERSION,
    memoryLimitInMB: env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
    logGroupName: env.AWS_LAMBDA_LOG_GROUP_NAME,
    logStreamName: env.AWS_LAMBDA_LOG_STREAM_NAME,
  };
}

/** Runs one invocation; resolves once its result or error has been posted. `callbackStyle` and
 *  `isAsync`: the handler's shape, worked out once. */
function invoke(handler, headers, body, callbackStyle, isAsync) {
  const id = headers['lambda-runtime-aws-request-id'];
  const deadline = Number(headers['lambda-runtime-deadline-ms']);
  globalThis[REQUEST_ID] = id;
  const traceId = headers['lambda-runtime-trace-id'];
  if (!traceId) delete env._X_AMZN_TRACE_ID;
  else if (setTrace === null || !setTrace(traceId)) env._X_AMZN_TRACE_ID = traceId;

  return new Promise((resolve, reject) => {
    const invocation = { id };
    pending = invocation;
    let claimed = false; // the first of callback / done / succeed / fail / returned value wins
    const claim = () => !claimed && (claimed = true);
    const settle = (err, result) => {
      onEmptyLoop = null;
      if (pending === invocation) pending = null;
      (err != null ? postError(id, err) : postResponse(id, result)).then(resolve, reject);
    };
    const done = (err, result) => claim() && settle(err, result);
    let waitForEmptyLoop = true;
    const callback = (err, result) => {
      if (!claim()) return;
      if (err != null || !waitForEmptyLoop) settle(err, result);
      else onEmptyLoop = () => settle(null, result);
    };

    let event, context;
    try {
      try {
        event = JSON.parse(body);
      } catch (e) {
        throw new RuntimeError('Runtime.UnmarshalError', `Unable to parse event: ${e.message}`);
      }
      context = {
        get callbackWaitsForEmptyEventLoop() {
          return waitForEmptyLoop;
        },
        set callbackWaitsForEmptyEventLoop(value) {
          waitForEmptyLoop = value;
        },
        succeed: (result) => done(null, result),
        fail: (err) => done(err ?? 'handled'),
        done,
        functionName: statics.functionName,
        functionVersion: statics.functionVersion,
        invokedFunctionArn: headers['lambda-runtime-invoked-function-arn'],
        memoryLimitInMB: statics.memoryLimitInMB,
        awsRequestId: id,
        logGroupName: statics.logGroupName,
        logStreamName: statics.logStreamName,
        identity: parseJson(headers['lambda-runtime-cognito-identity'], 'CognitoIdentity'),
        clientContext: parseJson(headers['lambda-runtime-client-context'], 'ClientContext'),
        getRemainingTimeInMillis: () => deadline - Date.now(),
      };
      if (headers['lambda-runtime-aws-tenant-id']) context.tenantId = headers['lambda-runtime-aws-tenant-id'];
    } catch (e) {
      done(e);
      return;
    }

    // If the loop drains with no answer: async handlers fail, others answer null (as the RIC does).
    onEmptyLoop = isAsync
      ? () => done(new RuntimeError('Runtime.NodeJsExit', 'Error: Runtime exited without providing a reason'))
      : () => done(null, null);
    try {
      const result = callbackStyle ? handler(event, context, callback) : handler(event, context);
      if (typeof result?.then === 'function') {
        result.then((value) => done(null, value), (err) => done(err ?? 'handled'));
      } else if (!callbackStyle) {
        done(null, result);
      }
    } catch (err) {
      done(err ?? 'handled');
    }
  });
}

async function loop(handler) {
  statics = contextStatics();
  void process.stdout, void process.stderr; // made now (lazily made streams), so counted as idle below
  idleResources = process.getActiveResourcesInfo().length;
  const callbackStyle = handler.length >= 3;
  const isAsync = util.types.isAsyncFunction(handler);
  for (;;) {
    const next = await call('GET', `${RUNTIME}/invocation/next`);
    if (next.status !== 200) throw new Error(`GET /invocation/next answered ${next.status}: ${next.body}`);
    await invoke(handler, next.headers, next.body, callbackStyle, isAsync);
  }
}

// ---------------------------------------------------------------------------------------------
// Crashes and start-up.

let initialized = false;
let crashing = false;

/** An uncaught error: report it (init error, or the pending invocation's error), then exit. */
async function crash(label, err, code) {
  if (crashing) return;
  crashing = true;
  try {
    logError(label, err);
    if (!initialized) await postInitError(err);
    else if (pending) await postError(pending.id, err, { log: false, viaAgent: false });
  } catch (e) {
    process.stderr.write(`lamina bootstrap: could not report the error: ${e}\n`);
  } finally {
    await stdioFlushed();
    process.exit(code);
  }
}

process.on('uncaughtException', (err) => crash('Uncaught Exception', err, 129));
process.on('unhandledRejection', (reason) => {
  const err = new RuntimeError('Runtime.UnhandledPromiseRejection', String(reason));
  err.reason = reason;
  crash('Unhandled Promise Rejection', err, 128);
});

/** Standby (lamina's own extension): started before any function needed this environment; wait for
 *  lamina to assign one and take its environment variables. The node start-up is already paid. */
if (env.LAMINA_STANDBY) {
  try {
    const reply = await call('GET', STANDBY);
    if (reply.status !== 200) throw new Error(`GET /lamina/standby answered ${reply.status}`);
    delete env.LAMINA_STANDBY;
    Object.assign(env, JSON.parse(reply.body).environment);
    readLogSettings();
  } catch (err) {
    process.stderr.write(`lamina bootstrap: no assignment: ${err}\n`);
    process.exit(1);
  }
}

let handler = null;
try {
  handler = await loadHandler();
} catch (err) {
  await crash('Uncaught Exception', err, 129); // exits
}
if (handler && !crashing) {
  initialized = true;
  loop(handler).catch(async (err) => {
    process.stderr.write(`lamina bootstrap: Runtime API failure: ${err?.stack ?? err}\n`);
    await stdioFlushed();
    process.exit(1);
  });
}

/**
 * The one seam to busboy: builds the parser from request headers, wires every event busboy
 * emits (fields, files, limits, errors, parts it drops silently) and hands the pipeline typed
 * parts and UploadErrors (as fastify-multipart wires busboy to its codes). Nothing else in
 * the service imports busboy or looks at its messages.
 */
import type { Readable, Writable } from 'node:stream';
import busboy, { type Busboy } from 'busboy';
import { UploadError } from './errors.ts';

/** Limits enforced while parsing one request. */
export interface ParseLimits {
  /** Largest file part, bytes. */
  maxFileBytes: number;
  /** Most file parts per request. */
  maxFiles: number;
  /** Most text fields per request. */
  maxFields: number;
  /** Largest text field value, bytes. */
  maxFieldBytes: number;
}

export type IncomingHeaders = Record<string, string | string[] | undefined>;

/** Lowercased `type/subtype` of a Content-Type header, or '' when absent. */
function mediaType(header: string | undefined): string {
  return (header ?? '').split(';', 1)[0]!.trim().toLowerCase();
}

function headerValue(headers: IncomingHeaders, name: string): string | undefined {
  const value = headers[name] ?? headers[name.toLowerCase()];
  return Array.isArray(value) ? value[0] : value;
}

/**
 * Creates a busboy multipart parser, or throws UNSUPPORTED_MEDIA_TYPE. busboy itself would
 * also take `application/x-www-form-urlencoded`; this service only takes multipart.
 */
export function createMultipartParser(headers: IncomingHeaders, limits: ParseLimits): Busboy {
  const contentType = headerValue(headers, 'content-type');
  if (mediaType(contentType) !== 'multipart/form-data') {
    throw new UploadError(
      'UNSUPPORTED_MEDIA_TYPE',
      `Expected Content-Type multipart/form-data, got ${contentType ? JSON.stringify(mediaType(contentType)) : 'none'}`,
    );
  }
  try {
    return busboy({
      // The only header busboy reads.
      headers: { 'content-type': contentType! },
      // RFC 7578 section 4.2: names are UTF-8 unless said otherwise; `filename*` (RFC 5987)
      // is decoded by busboy with its declared charset.
      defParamCharset: 'utf8',
      preservePath: false,
      limits: {
        // busboy emits 'limit' when a file *reaches* the limit, not when it passes it, so a
        // file of exactly maxFileBytes would be refused: give it one byte of room.
        fileSize: limits.maxFileBytes + 1,
        files: limits.maxFiles,
        fields: limits.maxFields,
        // Same "reaches" rule for field values: +1 so a value of exactly the limit passes.
        fieldSize: limits.maxFieldBytes + 1,
      },
    });
  } catch (err) {
    // busboy's constructor only throws for a content type it cannot use (no boundary).
    throw new UploadError('UNSUPPORTED_MEDIA_TYPE', 'multipart/form-data needs a boundary parameter', {
      cause: err,
    });
  }
}

/** Any parse error busboy reports (on the parser or on a file stream) means a bad body. */
export function malformedMultipart(cause: unknown): UploadError {
  return new UploadError('MALFORMED_MULTIPART', 'The multipart body could not be parsed', { cause });
}

export function fileTooLarge(filename: string, maxFileBytes: number): UploadError {
  return new UploadError('FILE_TOO_LARGE', `File ${JSON.stringify(filename)} is larger than ${maxFileBytes} bytes`);
}

export function tooManyFiles(maxFiles: number): UploadError {
  return new UploadError('TOO_MANY_FILES', `At most ${maxFiles} files per request`);
}

export function tooManyFields(maxFields: number): UploadError {
  return new UploadError('TOO_MANY_FIELDS', `At most ${maxFields} text fields per request`);
}

export function fieldTooLarge(name: string, maxFieldBytes: number): UploadError {
  return new UploadError('FIELD_TOO_LARGE', `Field ${JSON.stringify(name)} is larger than ${maxFieldBytes} bytes`);
}

export function payloadTooLarge(maxTotalBytes: number): UploadError {
  return new UploadError('PAYLOAD_TOO_LARGE', `Request body is larger than ${maxTotalBytes} bytes`);
}

export function unnamedPart(): UploadError {
  return new UploadError('MALFORMED_MULTIPART', 'Every part needs a name in its Content-Disposition (RFC 7578 section 4.2)');
}

/** The boundary parameter of a multipart Content-Type (quoted or not), if any. */
export function boundaryOf(contentType: string | undefined): string | undefined {
  const m = /;\s*boundary=(?:"([^"]+)"|([^\s;]+))/i.exec(contentType ?? '');
  return m?.[1] ?? m?.[2];
}

/**
 * Counts multipart delimiters (`CRLF--boundary`, RFC 2046 section 5.1.1) in the raw body, the
 * same needle busboy searches for. busboy drops a part it cannot use (no or unparseable
 * Content-Disposition, e.g. a bad `filename*` escape) without a word; comparing this count
 * with the parts it reported turns such a silent loss into MALFORMED_MULTIPART. Used only
 * where busboy's own count cannot be read (`busboySearch`): it is a second scan of the body.
 */
export class DelimiterCounter {
  count = 0;
  readonly #needle: Buffer;
  /** Last needle.length - 1 bytes seen, to find a delimiter split across chunks. */
  #tail: Buffer;

  constructor(boundary: string) {
    this.#needle = Buffer.from(`\r\n--${boundary}`, 'latin1');
    // busboy reads the body as if a CRLF came first (a body may open with the delimiter).
    this.#tail = Buffer.from('\r\n');
  }

  feed(chunk: Buffer): void {
    const needle = this.#needle;
    const keep = needle.length - 1;
    // A delimiter that starts in the tail and ends in this chunk.
    if (this.#tail.length > 0) {
      const window = Buffer.concat([this.#tail, chunk.subarray(0, keep)]);
      for (let i = window.indexOf(needle); i >= 0 && i < this.#tail.length; i = window.indexOf(needle, i + 1)) this.count++;
    }
    for (let i = chunk.indexOf(needle); i >= 0; i = chunk.indexOf(needle, i + needle.length)) this.count++;
    this.#tail =
      chunk.length >= keep
        ? Buffer.from(chunk.subarray(chunk.length - keep))
        : Buffer.concat([this.#tail, chunk]).subarray(-keep);
  }
}

export function skippedPart(): UploadError {
  return new UploadError(
    'MALFORMED_MULTIPART',
    'A part has no usable Content-Disposition (missing, not form-data, or with an unreadable filename*)',
  );
}

/** One file part as the pipeline sees it. */
export interface MultipartFile {
  field: string;
  /** As the client sent it (RFC 5987 `filename*` decoded); '' when absent. */
  filename: string;
  mimeType: string;
  /** The part's bytes. Consume it to its end (or destroy it) so the parser can finish. */
  stream: Readable;
  /** `listener` is called once if this part turns out cut (over the size limit) or broken. */
  onFailure(listener: (err: UploadError) => void): void;
}

export interface MultipartHandlers {
  field(name: string, value: string): void;
  file(part: MultipartFile): void;
  /** A failure of the whole request: a limit, a malformed body, an unnamed or dropped part. */
  fail(err: UploadError): void;
  /** True once the request failed: later parts are drained here, never reported. */
  failed(): boolean;
}

export interface MultipartParse {
  /** Where the request body goes. */
  parser: Writable;
  /**
   * Feed every raw body chunk here too (before the parser sees it): it counts the parts where
   * busboy's own count cannot be read.
   */
  count(chunk: Buffer): void;
  /** Settles when the parser is done; by then every failure was reported through `fail`. */
  finished: Promise<void>;
}

/**
 * Parses a multipart body: throws UNSUPPORTED_MEDIA_TYPE for a body that is not multipart,
 * else reports parts and failures through `handlers`.
 */
export function parseMultipart(headers: IncomingHeaders, limits: ParseLimits, on: MultipartHandlers): MultipartParse {
  const parser = createMultipartParser(headers, limits);
  /** Parts busboy reported (fields and files, used or not). */
  let partsSeen = 0;

  parser.on('field', (name: string | undefined, value: string, info: { nameTruncated: boolean; valueTruncated: boolean }) => {
    partsSeen++;
    if (on.failed()) return;
    if (name === undefined) return on.fail(unnamedPart());
    if (info.valueTruncated || info.nameTruncated) return on.fail(fieldTooLarge(name, limits.maxFieldBytes));
    on.field(name, value);
  });
  parser.on('filesLimit', () => on.fail(tooManyFiles(limits.maxFiles)));
  parser.on('fieldsLimit', () => on.fail(tooManyFields(limits.maxFields)));
  parser.on('file', (name: string | undefined, stream: Readable, info: { filename?: string; mimeType: string }) => {
    partsSeen++;
    if (on.failed()) return discard(stream);
    if (name === undefined) {
      discard(stream);
      return on.fail(unnamedPart());
    }
    const filename = info.filename ?? '';
    on.file({
      field: name,
      filename,
      mimeType: info.mimeType,
      stream,
      onFailure(listener) {
        // busboy cuts a part at the limit and says so only by this event: a truncated part
        // must never be completed.
        stream.on('limit', () => listener(fileTooLarge(filename, limits.maxFileBytes)));
        stream.on('error', (err: unknown) => listener(malformedMultipart(err)));
      },
    });
  });

  // No closure here refers to `parser` (or what watchEnd keeps): they outlive the parse (a
  // file stream's listeners), and one that did would keep the parser alive until its upload ends.
  const { finished, count } = watchEnd(parser, boundaryOf(headerValue(headers, 'content-type'))!, on, () => partsSeen);
  return { parser, count, finished };
}

const NO_COUNT = (): void => {};

/**
 * busboy 1.6's delimiter search: the streamsearch instance it feeds the body through, whose
 * `matches` counts every delimiter up to the closing one. Undefined for a busboy without one.
 */
function busboySearch(parser: Busboy): { readonly matches: number } | undefined {
  const search: unknown = (parser as unknown as { _bparser?: unknown })._bparser;
  if (typeof search !== 'object' || search === null) return undefined;
  return typeof (search as { matches?: unknown }).matches === 'number' ? (search as { matches: number }) : undefined;
}

/**
 * Settles `finished` when the parser is done, after failing the request if busboy dropped a
 * part without a word: every delimiter but the closing one opened a part it should have
 * reported. busboy's own search counts the delimiters where it can be read, so the body is
 * scanned once; else `count` must see every raw chunk (a second scan, DelimiterCounter).
 */
function watchEnd(
  parser: Busboy,
  boundary: string,
  on: MultipartHandlers,
  partsSeen: () => number,
): { finished: Promise<void>; count: (chunk: Buffer) => void } {
  const search = busboySearch(parser);
  const delimiters = search ? undefined : new DelimiterCounter(boundary);
  let resolveFinished!: () => void;
  const finished = new Promise<void>((resolve) => (resolveFinished = resolve));
  parser.on('error', (err: unknown) => {
    on.fail(malformedMultipart(err));
    resolveFinished();
  });
  parser.on('close', () => {
    const seen = search ? search.matches : delimiters!.count;
    if (!on.failed() && partsSeen() < seen - 1) on.fail(skippedPart());
    resolveFinished();
  });
  // A module-level no-op when busboy counts: a closure made here would keep the search alive.
  return { finished, count: delimiters ? (chunk) => delimiters.feed(chunk) : NO_COUNT };
}

/**
 * Drains a file part nobody will store. busboy destroys a part cut short by the end of the
 * body with "Unexpected end of form": without a listener that error would be thrown as an
 * uncaught exception (and crash a Lambda instance). The request's outcome is decided elsewhere.
 */
export function discard(part: Readable): void {
  part.on('error', () => {});
  part.resume();
}

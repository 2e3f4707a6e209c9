/**
 * Where a JSON syntax error is, for a person: `JSON.parse` finds it, these turn V8's message (which differs between
 * Node 20 and 22, and sometimes has no position) into `line:column` and a short message.
 * Kept by hand rather than jsonc-parser 3: it reports a trailing comma at the `}` instead of the comma, throws
 * RangeError on deep nesting and accepts comments by default (measured for #10).
 */

/**
 * V8's message → `line:column`, a short message and a code frame (the line, a caret under the place), the same on
 * Node 20 and 22. A trailing comma is reported at the comma, where the mistake is, not at the bracket after it.
 */
export function describeSyntaxError(text: string, raw: string): { where: string; message: string; frame: string } {
  const position = /at position (\d+)/.exec(raw)
  const lineColumn = /\(line (\d+) column (\d+)\)/.exec(raw)
  let offset = position ? Math.min(Number(position[1]), text.length) : lineColumn ? offsetAt(text, Number(lineColumn[1]), Number(lineColumn[2])) : syntaxErrorOffset(text)

  if ((text[offset] === '}' || text[offset] === ']') && text.slice(0, offset).trimEnd().endsWith(',')) {
    offset = text.slice(0, offset).trimEnd().length - 1
    return { where: lineColumnAt(text, offset), message: 'invalid JSON: trailing comma', frame: codeFrame(text, offset) }
  }
  const where = lineColumnAt(text, offset)
  let message = raw
    .replace(/ in JSON at position \d+.*$/s, '')
    .replace(/ \(line \d+ column \d+\)$/, '')
    .replace(/^(Unexpected token '.+?'), .*$/s, '$1')
    .replace(/^Unexpected end of JSON input$/, 'Unexpected end of file')
    .replace(/^Unexpected token '([\u0000-\u001f])'$/, (_, c: string) =>
      c === '\n' || c === '\r' ? 'Unexpected line break' : `Unexpected character U+${c.charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')}`,
    )
  if (message.includes('is not valid JSON')) message = 'not valid JSON'
  if (message.length > 120) message = `${message.slice(0, 120)}…`
  return { where, message: `invalid JSON: ${message.charAt(0).toLowerCase()}${message.slice(1)}`, frame: codeFrame(text, offset) }
}

/** The offset of a 1-based line and column. */
function offsetAt(text: string, line: number, column: number): number {
  let offset = 0
  for (let l = 1; l < line && offset < text.length; l++) {
    const next = text.slice(offset).search(/\r\n|\n|\r/)
    if (next < 0) return text.length
    offset += next + (text.startsWith('\r\n', offset + next) ? 2 : 1)
  }
  return Math.min(text.length, offset + column - 1)
}

/**
 * The line holding `offset` with a caret under it, as TypeScript shows one: `  6 |     "b": 1,` then `    |          ^`.
 * A long line is cut around the place (minified JSON is one line); tabs are kept so the caret lines up.
 */
export function codeFrame(text: string, offset: number): string {
  const start = Math.max(text.lastIndexOf('\n', offset - 1), text.lastIndexOf('\r', offset - 1)) + 1
  const endMatch = text.slice(offset).search(/\r|\n/)
  const end = endMatch < 0 ? text.length : offset + endMatch
  const line = lineColumnAt(text, offset).split(':')[0]!
  let from = start
  let to = end
  if (to - from > 100) {
    from = Math.max(start, offset - 50)
    to = Math.min(end, from + 100)
  }
  const shown = `${from > start ? '…' : ''}${text.slice(from, to)}${to < end ? '…' : ''}`
  const pad = (from > start ? 1 : 0) + (offset - from)
  const gutter = ' '.repeat(line.length)
  const caretIndent = text.slice(from, from + pad - (from > start ? 1 : 0)).replace(/[^\t]/g, ' ')
  return `${line} | ${shown.replace(/[\u0000-\u0008\u000b-\u001f]/g, ' ')}\n${gutter} | ${from > start ? ' ' : ''}${caretIndent}^`
}

/** 1-based line and column (UTF-16 units, as editors count) of an offset; `\n`, `\r\n` and `\r` end lines. */
function lineColumnAt(text: string, offset: number): string {
  let line = 1
  let start = 0
  for (let i = 0; i < offset; i++) {
    const c = text.charCodeAt(i)
    if (c === 10 || (c === 13 && text.charCodeAt(i + 1) !== 10)) {
      line++
      start = i + 1
    }
  }
  return `${line}:${offset - start + 1}`
}

/**
 * Offset of the first JSON syntax error, for V8 messages that carry no position
 * (`Unexpected token ']', "[1,]" is not valid JSON`). Iterative: deep nesting cannot overflow the stack.
 */
function syntaxErrorOffset(text: string): number {
  const n = text.length
  const stack: string[] = []
  let i = 0
  let expect: 'value' | 'valueOrClose' | 'key' | 'keyOrClose' | 'next' = 'value'
  const skipSpace = () => {
    while (i < n && ' \t\n\r'.includes(text[i]!)) i++
  }
  const digits = (): boolean => {
    const start = i
    while (i < n && text[i]! >= '0' && text[i]! <= '9') i++
    return i > start
  }
  /** From the opening quote to just past the closing one; false with `i` at the bad character. */
  const string = (): boolean => {
    for (i++; i < n; i++) {
      const c = text[i]!
      if (c === '"') {
        i++
        return true
      }
      if (c < ' ') return false
      if (c !== '\\') continue
      const e = text[++i]
      if (e === 'u') {
        for (let k = 0; k < 4; k++) if (!/[0-9a-fA-F]/.test(text[++i] ?? '')) return false
      } else if (e === undefined || !'"\\/bfnrt'.includes(e)) return false
    }
    return false
  }
  for (;;) {
    skipSpace()
    if (expect === 'next') {
      const top = stack[stack.length - 1]
      if (top === undefined || i >= n) return i
      if (text[i] === (top === '{' ? '}' : ']')) {
        stack.pop()
        i++
      } else if (text[i] === ',') {
        i++
        expect = top === '{' ? 'key' : 'value'
      } else return i
      continue
    }
    if (i >= n) return n
    const c = text[i]!
    if (expect === 'key' || expect === 'keyOrClose') {
      if (c === '}' && expect === 'keyOrClose') {
        stack.pop()
        i++
        expect = 'next'
        continue
      }
      if (c !== '"' || !string()) return i
      skipSpace()
      if (text[i] !== ':') return i
      i++
      expect = 'value'
      continue
    }
    if (c === ']' && expect === 'valueOrClose') {
      stack.pop()
      i++
    } else if (c === '{' || c === '[') {
      stack.push(c)
      i++
      expect = c === '{' ? 'keyOrClose' : 'valueOrClose'
      continue
    } else if (c === '"') {
      if (!string()) return i
    } else if (c === '-' || (c >= '0' && c <= '9')) {
      if (c === '-') i++
      if (text[i] === '0') i++
      else if (!digits()) return i
      if (text[i] === '.') {
        i++
        if (!digits()) return i
      }
      if (text[i] === 'e' || text[i] === 'E') {
        i++
        if (text[i] === '+' || text[i] === '-') i++
        if (!digits()) return i
      }
    } else {
      const word = c === 't' ? 'true' : c === 'f' ? 'false' : c === 'n' ? 'null' : ''
      if (!word) return i
      for (const w of word) if (text[i++] !== w) return i - 1
    }
    expect = 'next'
  }
}

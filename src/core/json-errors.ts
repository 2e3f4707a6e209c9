/**
 * Where a JSON syntax error is, for a person: `JSON.parse` finds it, these turn V8's message (which differs between
 * Node 20 and 22, and sometimes has no position) into `line:column` and a short message.
 * Kept by hand rather than jsonc-parser 3: it reports a trailing comma at the `}` instead of the comma, throws
 * RangeError on deep nesting and accepts comments by default (measured for #10).
 */

/** V8's message → `line:column` and a short message, the same on Node 20 and 22. */
export function describeSyntaxError(text: string, raw: string): { where: string; message: string } {
  const position = /at position (\d+)/.exec(raw)
  const lineColumn = /\(line (\d+) column (\d+)\)/.exec(raw)
  const offset = position ? Math.min(Number(position[1]), text.length) : lineColumn ? undefined : syntaxErrorOffset(text)
  const where = offset === undefined ? `${lineColumn![1]}:${lineColumn![2]}` : lineColumnAt(text, offset)

  if (offset !== undefined && (text[offset] === '}' || text[offset] === ']') && text.slice(0, offset).trimEnd().endsWith(',')) {
    return { where, message: 'invalid JSON: trailing comma' }
  }
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
  return { where, message: `invalid JSON: ${message.charAt(0).toLowerCase()}${message.slice(1)}` }
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

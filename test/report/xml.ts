// A strict little XML reader for the report tests (no dependency): it throws on anything a real parser would reject
// that our writers could plausibly get wrong (unbalanced or crossed tags, a raw '<' or bare '&', unquoted or
// repeated attributes, text outside the root) and returns a tree to query. HTML is read the same way, with its void
// elements (<meta>) allowed to stay open and a <!DOCTYPE> skipped.

export interface XmlElement {
  name: string;
  attrs: Record<string, string>;
  children: (XmlElement | string)[];
}

const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

function decode(text: string, where: number): string {
  return text.replace(/&([^;\s&<]*);?/g, (whole, name: string) => {
    if (!whole.endsWith(';')) throw new Error(`bare '&' at ${where}: ${JSON.stringify(whole.slice(0, 12))}`);
    if (name in ENTITIES) return ENTITIES[name]!;
    const code = /^#x([0-9a-f]+)$/i.exec(name) ? parseInt(name.slice(2), 16) : /^#(\d+)$/.exec(name) ? Number(name.slice(1)) : NaN;
    if (!Number.isFinite(code)) throw new Error(`unknown entity &${name}; at ${where}`);
    return String.fromCodePoint(code);
  });
}

const NAME = /^[A-Za-z_:][\w.:-]*/;

export function parseXml(text: string, options: { voidElements?: string[] } = {}): XmlElement {
  const voids = new Set(options.voidElements ?? []);
  const root: XmlElement = { name: '#document', attrs: {}, children: [] };
  const stack: XmlElement[] = [root];
  let i = 0;
  // <style> and <script> hold raw text in HTML; ours must be XML-clean anyway, so they are read like any element.
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u0008\u000b\u000c\u000e-\u001f]/.test(text)) throw new Error('a character XML 1.0 forbids');
  while (i < text.length) {
    const lt = text.indexOf('<', i);
    const chunk = text.slice(i, lt < 0 ? text.length : lt);
    if (chunk) {
      const top = stack.at(-1)!;
      if (top === root) {
        if (chunk.trim()) throw new Error(`text outside the root element at ${i}: ${JSON.stringify(chunk.slice(0, 20))}`);
      } else top.children.push(decode(chunk, i));
    }
    if (lt < 0) break;
    i = lt;
    if (text.startsWith('<?', i)) {
      const end = text.indexOf('?>', i);
      if (end < 0 || i !== 0) throw new Error(`a processing instruction not at the start, or unclosed, at ${i}`);
      i = end + 2;
    } else if (text.startsWith('<!--', i)) {
      const end = text.indexOf('-->', i);
      if (end < 0) throw new Error(`unclosed comment at ${i}`);
      i = end + 3;
    } else if (/^<!DOCTYPE\s/i.test(text.slice(i, i + 10))) {
      if (stack.length > 1 || root.children.length > 0) throw new Error(`DOCTYPE after the root at ${i}`);
      i = text.indexOf('>', i) + 1;
    } else if (text.startsWith('</', i)) {
      const m = /^<\/([A-Za-z_:][\w.:-]*)\s*>/.exec(text.slice(i));
      if (!m) throw new Error(`bad closing tag at ${i}`);
      const open = stack.pop();
      if (!open || open === root || open.name !== m[1]) throw new Error(`</${m[1]}> at ${i} closes <${open?.name}>`);
      i += m[0].length;
    } else {
      const name = NAME.exec(text.slice(i + 1))?.[0];
      if (!name) throw new Error(`a raw '<' at ${i}`);
      let j = i + 1 + name.length;
      const attrs: Record<string, string> = {};
      for (;;) {
        const space = /^\s*/.exec(text.slice(j))![0].length;
        j += space;
        if (text.startsWith('/>', j) || text[j] === '>') break;
        if (space === 0) throw new Error(`attributes of <${name}> run together at ${j}`);
        const a = /^([A-Za-z_:][\w.:-]*)\s*=\s*("([^"<]*)"|'([^'<]*)')/.exec(text.slice(j));
        if (!a) throw new Error(`bad attribute in <${name}> at ${j}: ${JSON.stringify(text.slice(j, j + 20))}`);
        if (a[1]! in attrs) throw new Error(`attribute ${a[1]} repeated in <${name}> at ${j}`);
        attrs[a[1]!] = decode(a[3] ?? a[4]!, j);
        j += a[0].length;
      }
      const element: XmlElement = { name, attrs, children: [] };
      const parent = stack.at(-1)!;
      if (parent === root && root.children.length > 0) throw new Error(`a second root element <${name}> at ${i}`);
      parent.children.push(element);
      if (text.startsWith('/>', j)) {
        i = j + 2;
      } else {
        i = j + 1;
        if (!voids.has(name)) stack.push(element);
      }
    }
  }
  if (stack.length !== 1) throw new Error(`unclosed <${stack.at(-1)!.name}>`);
  const [top] = root.children;
  if (!top || typeof top === 'string') throw new Error('no root element');
  return top;
}

/** Every element below (and including) `el` that `match` accepts, in document order. */
export function findAll(el: XmlElement, match: (e: XmlElement) => boolean): XmlElement[] {
  const out: XmlElement[] = [];
  const walk = (e: XmlElement) => {
    if (match(e)) out.push(e);
    for (const c of e.children) if (typeof c !== 'string') walk(c);
  };
  walk(el);
  return out;
}

export function byClass(el: XmlElement, cls: string): XmlElement[] {
  return findAll(el, (e) => (e.attrs['class'] ?? '').split(/\s+/).includes(cls));
}

/** The decoded text inside an element. */
export function textOf(el: XmlElement): string {
  return el.children.map((c) => (typeof c === 'string' ? c : textOf(c))).join('');
}

/** The points of an SVG path made of M and L commands. */
export function pathPoints(d: string): [number, number][] {
  const out: [number, number][] = [];
  for (const m of d.matchAll(/[ML]\s*(-?[\d.]+)[ ,]+(-?[\d.]+)/g)) out.push([Number(m[1]), Number(m[2])]);
  return out;
}

// The only way our code makes elements. Children that are strings become text nodes, so log
// data always reaches the page as text; attributes come from a fixed allowlist, and href is
// only ever a URL our own code built (relative /ui/... links), never a value from a log.

const ATTRIBUTES = new Set([
  "id", "type", "name", "value", "placeholder", "title", "role", "tabindex", "for",
  "href", "autocomplete", "spellcheck", "disabled", "checked", "selected", "multiple",
  "readonly", "required", "open", "min", "max", "step", "size", "colspan", "rowspan",
  "aria-label", "aria-pressed", "aria-expanded", "aria-live", "aria-hidden", "aria-selected",
  "aria-current", "aria-busy", "label", "scope", "hidden",
]);

const SVG_NS = "http://www.w3.org/2000/svg";

function setProps(node, props) {
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "className") {
      node.setAttribute("class", value);
    } else if (key === "dataset") {
      for (const [name, data] of Object.entries(value)) {
        if (data !== undefined && data !== null) node.dataset[name] = String(data);
      }
    } else if (key === "testid") {
      node.dataset.testid = value;
    } else if (key.startsWith("on") && typeof value === "function") {
      node.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key === "href") {
      if (!String(value).startsWith("/ui/")) throw new Error(`refused href ${value}`);
      node.setAttribute("href", value);
    } else if (ATTRIBUTES.has(key)) {
      node.setAttribute(key, value === true ? "" : String(value));
    } else {
      throw new Error(`attribute not allowed: ${key}`);
    }
  }
}

function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

// el("a", {href: "/ui/explore", className: "x", testid: "nav-explore"}, "Explore")
export function el(tag, props, ...children) {
  const node = document.createElement(tag);
  setProps(node, props);
  append(node, children);
  return node;
}

// SVG attributes are geometry and presentation set by our chart code: any name is allowed,
// except event-handler attributes (on*), which would be script.
export function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null) continue;
    if (key === "className") node.setAttribute("class", value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key === "testid") node.dataset.testid = value;
    else if (key.startsWith("on") && typeof value === "function") {
      node.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key.toLowerCase().startsWith("on") || key.toLowerCase().includes("href")) {
      throw new Error(`svg attribute not allowed: ${key}`);
    } else node.setAttribute(key, String(value));
  }
  append(node, children);
  return node;
}

// An onkeydown handler: the named keys ("Enter", " ", "Escape") run action(event) instead of
// what they would do otherwise; any other key is left alone.
export function onKeys(keys, action) {
  return (event) => {
    if (!keys.includes(event.key)) return;
    event.preventDefault();
    action(event);
  };
}

export function clear(node) {
  node.replaceChildren();
  return node;
}

// Copies text to the clipboard; navigator.clipboard needs a secure context (https or
// localhost), so a page served over plain http elsewhere falls back to a selected textarea.
export async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch {
      // Permission refused: try the fallback.
    }
  }
  const area = el("textarea", { readonly: true, className: "offscreen" });
  area.value = text;
  document.body.append(area);
  area.select();
  let done = false;
  try {
    done = document.execCommand("copy");
  } catch {
    done = false;
  }
  area.remove();
  return done;
}

// "2026-12-05T11:02:03.123456+00:00" -> "2026-12-05 11:02:03.123" in UTC, the time the server
// stores, so the same line reads the same for everyone sharing a URL.
export function formatTime(iso) {
  if (!iso) return "";
  const text = String(iso);
  const match = /^(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)(\.\d{1,3})?/.exec(text);
  return match ? `${match[1]} ${match[2]}${match[3] || ""}` : text;
}

/*
 * Building the page. Safety rule of the whole console: everything that came from a customer, an
 * agent or the server goes into the page as text (textContent, text nodes, setAttribute), never
 * as HTML.
 */

/** The first element matching a CSS selector, or null. */
export function $(selector) {
  return document.querySelector(selector);
}

/**
 * Build an element. props: "class", "text", "testid" (data-testid), "dataset" (data-*),
 * "on<event>" listeners, anything else an attribute (true → present, null/undefined/false →
 * left out). Children may be nested arrays; strings among them become text nodes (never HTML).
 */
export function h(tag, props, ...rest) {
  const el = document.createElement(tag);
  if (props) {
    for (const key of Object.keys(props)) {
      const value = props[key];
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") el.className = value;
      else if (key === "text") el.textContent = String(value);
      else if (key === "testid") el.setAttribute("data-testid", value);
      else if (key === "dataset") {
        for (const dk of Object.keys(value)) {
          if (value[dk] !== null && value[dk] !== undefined) el.dataset[dk] = String(value[dk]);
        }
      } else if (key.startsWith("on") && typeof value === "function") {
        el.addEventListener(key.slice(2), value);
      } else el.setAttribute(key, value === true ? "" : String(value));
    }
  }
  const children = rest.flat(Infinity);
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/*
 * Canned replies in the reply box: typing "/" and the start of a shortcut lists the agent's
 * replies (their own and their teams'), filled in for this conversation by the server
 * (GET /console/api/conversations/<id>/canned?q=). Up/Down choose, Enter or Tab (or a click)
 * puts the text in the box, Escape closes. A value the conversation lacks stays as a
 * "[order number]" hint, which is selected so the agent types over it.
 */

import { api, apiConversation } from "./api.js";
import { h } from "./dom.js";

const TRIGGER = /^\/([a-z0-9_-]{0,32})$/i;

/** Wire the menu to page.els.replyInput. Call before the reply box's own key handlers. */
export function attachCanned(page) {
  const input = page.els.replyInput;
  const menu = h("div", {
    class: "canned-menu",
    id: "canned-menu",
    role: "listbox",
    "aria-label": "Canned replies",
    testid: "canned-menu",
    hidden: true,
  });
  input.insertAdjacentElement("beforebegin", menu);
  input.setAttribute("aria-controls", "canned-menu");
  let items = [];
  let active = 0;
  let asked = 0; // the newest request wins: answers to older ones are dropped
  let timer = null;

  function close() {
    menu.hidden = true;
    items = [];
    input.removeAttribute("aria-activedescendant");
  }

  function pick(item) {
    input.value = item.filled;
    close();
    // The first missing value's hint, as the server wrote it ("[order number]").
    const hintText = item.missing && item.missing.length ? "[" + item.missing[0].replace(/_/g, " ") + "]" : "";
    const hint = hintText ? input.value.indexOf(hintText) : -1;
    input.focus();
    if (hint >= 0) input.setSelectionRange(hint, hint + hintText.length);
    else input.setSelectionRange(input.value.length, input.value.length);
    input.dispatchEvent(new Event("input"));
  }

  function render(prefix) {
    menu.replaceChildren();
    if (!items.length) {
      menu.append(
        h("div", { class: "canned-menu__empty", testid: "canned-empty" },
          "No canned reply starts with /" + prefix + ". Add one on the ",
          h("a", { href: "/console/canned" }, "Canned replies"), " page.")
      );
    }
    items.forEach(function (item, index) {
      menu.append(
        h(
          "div",
          {
            class: "canned-menu__item" + (index === active ? " is-active" : ""),
            id: "canned-" + item.id,
            role: "option",
            "aria-selected": index === active ? "true" : "false",
            testid: "canned-item",
            onmousedown: function (event) {
              event.preventDefault(); // keep the focus in the box
              pick(item);
            },
          },
          h("span", { class: "canned-menu__shortcut" }, "/" + item.shortcut),
          h("span", { class: "canned-menu__scope" }, item.personal ? "mine" : item.team),
          h("span", { class: "canned-menu__text" }, item.filled)
        )
      );
    });
    if (items.length) input.setAttribute("aria-activedescendant", "canned-" + items[active].id);
    menu.hidden = false;
  }

  async function lookup(prefix) {
    const mine = ++asked;
    let answer;
    try {
      answer = await api("GET", apiConversation(page.convId, "canned") + "?q=" + encodeURIComponent(prefix));
    } catch (err) {
      if (mine === asked) close();
      return;
    }
    if (mine !== asked || !TRIGGER.test(input.value)) return;
    items = answer.items || [];
    active = 0;
    render(prefix);
  }

  input.addEventListener("input", function () {
    const match = TRIGGER.exec(input.value);
    clearTimeout(timer);
    if (!match) {
      asked++;
      close();
      return;
    }
    timer = setTimeout(function () { lookup(match[1]); }, 120);
  });

  input.addEventListener("keydown", function (event) {
    if (menu.hidden) {
      // "/ref" typed and Enter pressed before the list came, or after Escape: never send a
      // shortcut to the customer by mistake.
      if (event.key === "Enter" && !event.shiftKey && TRIGGER.test(input.value)) {
        event.preventDefault();
        event.stopImmediatePropagation();
      }
      return;
    }
    if (event.key === "Escape") {
      close();
    } else if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      if (!items.length) return;
      active = (active + (event.key === "ArrowDown" ? 1 : items.length - 1)) % items.length;
      render(TRIGGER.exec(input.value)?.[1] || "");
    } else if ((event.key === "Enter" || event.key === "Tab") && items.length) {
      pick(items[active]);
    } else if (event.key !== "Enter") {
      return; // typing goes on; Enter with nothing to pick does nothing
    }
    event.preventDefault();
    event.stopImmediatePropagation(); // not a send
  });

  input.addEventListener("blur", function () { setTimeout(close, 150); });
}

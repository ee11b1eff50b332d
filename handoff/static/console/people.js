/* Names of the people in a conversation, as the conversation page shows them. */

/**
 * An agent's display name from the agent list; "<name> (you)" for the signed-in agent, and
 * "Agent #<id>" for one not (yet) in the list. "" for no agent.
 */
export function agentName(page, id) {
  if (id === null || id === undefined) return "";
  if (Number(id) === page.me.id) return page.me.name + " (you)";
  const agent = page.agents.find(function (a) { return Number(a.id) === Number(id); });
  return agent ? agent.display_name : "Agent #" + id;
}

/** The customer's best known name, else "<channel> visitor". view may still be null. */
export function customerName(view) {
  const c = (view && view.customer) || {};
  const p = (view && view.packet && view.packet.customer) || {};
  const conv = (view && view.conversation) || {};
  return c.display_name || p.display_name || (conv.channel ? conv.channel + " visitor" : "Customer");
}

"""Human handoff: queue, routing, handoff packet, agent console, CSAT, metrics."""

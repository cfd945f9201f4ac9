"""The realm: state that outlives one connection."""

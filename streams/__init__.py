"""Stream processing: the Faust app, its services and agents, and the sinks into the store."""

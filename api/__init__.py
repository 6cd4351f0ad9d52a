"""The HTTP API: thin routes that read from the store and publish commands to Kafka."""

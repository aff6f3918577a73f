"""The publisher's domain: publications and their state machine, the read model of stored
images, batches and the agency's CSV. Plain Python."""

"""The core's Redis storage, one module per structure (queues, jobs in
progress, sorted sets, workers, counters); ``faktory.store.Store`` puts them
together and is what the rest of the server uses."""

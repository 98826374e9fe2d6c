"""The ground floor every package stands on: config, errors, store handles, keys, logging."""

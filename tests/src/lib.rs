//! Shared test support: the golden interpreter and model generators (filled by the spine issue).

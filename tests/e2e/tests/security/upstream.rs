//! Attacks on untrusted upstream bytes, scopes and tokens.

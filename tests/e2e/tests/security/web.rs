//! Attacks on the HTTP surface: DNS rebinding, cross-site requests, secrets on edit, files at rest, outbound fetches.

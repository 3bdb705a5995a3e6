//! Attacks on exhaustion: batches, sessions, connections, malformed requests.

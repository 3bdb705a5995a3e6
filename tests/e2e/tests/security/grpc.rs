//! Attacks on the gRPC services between the components: every peer proves who it is.

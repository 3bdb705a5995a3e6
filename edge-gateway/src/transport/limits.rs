//! The refusals that bound what one request may cost the gateway (issue 11): the length
//! of a batch (`MCPR_MAX_BATCH`), the bytes its answers may add up to
//! (`MCPR_MAX_RESPONSE_BYTES`), and `params` that is not an object, which no MCP method
//! takes and an upstream may never answer. Each check reads what is parsed already: no
//! allocation unless it refuses.

use mcpr_core::jsonrpc::{Message, RpcError, code};
use mcpr_core::settings::Limits;

/// Implementation-defined server error: the answer is over `MCPR_MAX_RESPONSE_BYTES`.
pub const RESPONSE_TOO_LARGE: i64 = -32005;

/// A batch longer than `MCPR_MAX_BATCH` is refused whole.
pub fn check_batch(messages: &[Message], limits: &Limits) -> Result<(), RpcError> {
    if messages.len() <= limits.max_batch {
        return Ok(());
    }
    Err(RpcError::new(
        code::INVALID_REQUEST,
        format!(
            "batch of {} messages is over the limit of {} (MCPR_MAX_BATCH)",
            messages.len(),
            limits.max_batch
        ),
    ))
}

/// MCP's `params` is an object (or absent; `null` reads as absent, as `params_value` does).
/// Refused at once, with the position of the offending message in a batch.
pub fn check_params(messages: &[Message], batch: bool) -> Result<(), RpcError> {
    for (index, message) in messages.iter().enumerate() {
        let Some(params) = &message.params else {
            continue;
        };
        let text = params.get();
        if text.starts_with('{') || text == "null" {
            continue;
        }
        let method = message.method.as_deref().unwrap_or("a message");
        let at = if batch {
            format!(" (batch element {index})")
        } else {
            String::new()
        };
        return Err(RpcError::invalid_params(format!(
            "params of {method}{at} must be an object"
        )));
    }
    Ok(())
}

/// The bytes `message` takes serialized, near enough to hold a cap without serializing it:
/// its raw result or error, and the envelope around them.
pub fn answer_size(message: &Message) -> usize {
    const ENVELOPE: usize = 64;
    ENVELOPE
        + message.result.as_ref().map_or(0, |r| r.get().len())
        + message.error.as_ref().map_or(0, |e| e.get().len())
}

/// The error that replaces an answer, or a batch of them, over the cap.
pub fn too_large(bytes: usize, limits: &Limits) -> RpcError {
    RpcError::new(
        RESPONSE_TOO_LARGE,
        format!(
            "response of {bytes} bytes or more is over the limit of {} bytes (MCPR_MAX_RESPONSE_BYTES)",
            limits.max_response_bytes
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> (Vec<Message>, bool) {
        mcpr_core::jsonrpc::parse_payload(body.as_bytes()).unwrap()
    }

    #[test]
    fn batches_are_capped() {
        let limits = Limits {
            max_batch: 2,
            ..Limits::default()
        };
        let (two, _) = parse(
            r#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":"ping"}]"#,
        );
        assert!(check_batch(&two, &limits).is_ok());
        let (three, _) = parse(
            r#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":"ping"},{"jsonrpc":"2.0","id":3,"method":"ping"}]"#,
        );
        let error = check_batch(&three, &limits).unwrap_err();
        assert_eq!(error.code, code::INVALID_REQUEST);
        assert_eq!(
            error.message,
            "batch of 3 messages is over the limit of 2 (MCPR_MAX_BATCH)"
        );
    }

    #[test]
    fn params_must_be_objects() {
        for ok in [
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params": null}"#,
            r#"{"jsonrpc":"2.0","id":1,"result":[1]}"#,
        ] {
            let (messages, batch) = parse(ok);
            assert!(check_params(&messages, batch).is_ok(), "{ok}");
        }
        let (lone, batch) =
            parse(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":[1,2]}"#);
        let error = check_params(&lone, batch).unwrap_err();
        assert_eq!(error.code, code::INVALID_PARAMS);
        assert_eq!(error.message, "params of tools/call must be an object");
        let (batched, batch) = parse(
            r#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","method":"notifications/x","params":"s"}]"#,
        );
        assert_eq!(
            check_params(&batched, batch).unwrap_err().message,
            "params of notifications/x (batch element 1) must be an object"
        );
    }

    #[test]
    fn answer_size_covers_the_serialized_answer() {
        let answer = Message::result(
            serde_json::json!(7),
            serde_json::value::RawValue::from_string("{\"tools\":[]}".into()).unwrap(),
        );
        assert!(answer_size(&answer) >= answer.to_bytes().len());
    }
}

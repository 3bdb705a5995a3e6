//! The agent's end of the relay: gateways open one bidirectional gRPC stream and multiplex
//! every MCP exchange for this agent's providers over it.

use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use mcpr_core::jsonrpc::{Message, RpcError, code};
use mcpr_proto as pb;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::supervisor::Agent;

pub struct RelayService {
    pub agent: Arc<Agent>,
}

type FrameStream = Pin<Box<dyn Stream<Item = Result<pb::RelayFrame, Status>> + Send>>;

#[tonic::async_trait]
impl pb::relay_service_server::RelayService for RelayService {
    type RelayStream = FrameStream;

    async fn relay(
        &self,
        request: Request<Streaming<pb::RelayFrame>>,
    ) -> Result<Response<FrameStream>, Status> {
        let mut incoming = request.into_inner();
        let (tx, rx) = mpsc::channel::<Result<pb::RelayFrame, Status>>(1024);
        let agent = self.agent.clone();
        // What upstream servers send on their own goes to every gateway; each one delivers
        // what concerns its client sessions.
        // What upstream servers send on their own goes to every gateway, each delivering
        // what concerns its client sessions. It is queued synchronously, before the answer
        // it precedes, so on the stream it always comes first.
        let events_tx = tx.clone();
        let subscription = agent.subscribe_events(std::sync::Arc::new(
            move |event: &std::sync::Arc<mcpr_core::relay::AgentEvent>| {
                let kind = match event.kind {
                    mcpr_core::relay::EventKind::Notification => pb::RelayKind::Notification,
                    mcpr_core::relay::EventKind::Request => pb::RelayKind::ServerRequest,
                };
                let frame = pb::RelayFrame {
                    exchange_id: 0,
                    provider: event.provider.clone(),
                    client_session: event.client_session.clone(),
                    kind: kind as i32,
                    message: event.message.to_bytes(),
                    related_id: event.related_id.clone(),
                    ..Default::default()
                };
                if events_tx.try_send(Ok(frame)).is_err() {
                    tracing::warn!(
                        "a gateway's relay stream is full; an upstream notification was dropped"
                    );
                }
            },
        ));
        tokio::spawn(async move {
            let _subscription = subscription;
            let _open = agent.relay_streams.hold();
            while let Some(frame) = incoming.next().await {
                let frame = match frame {
                    Ok(frame) => frame,
                    Err(status) => {
                        tracing::debug!(%status, "relay stream ended");
                        return;
                    }
                };
                let agent = agent.clone();
                let tx = tx.clone();
                // Each exchange runs on its own: a slow tool never holds up the others.
                tokio::spawn(async move {
                    if let Some(reply) = handle_frame(&agent, frame).await {
                        let _ = tx.send(Ok(reply)).await;
                    }
                });
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

async fn handle_frame(agent: &Agent, frame: pb::RelayFrame) -> Option<pb::RelayFrame> {
    let kind = pb::RelayKind::try_from(frame.kind).unwrap_or(pb::RelayKind::Unspecified);
    let message = match Message::parse(&frame.message) {
        Ok(message) => message,
        Err(error) => {
            return (kind == pb::RelayKind::Request)
                .then(|| reply(&frame, Message::error(serde_json::Value::Null, &error)));
        }
    };
    match kind {
        pb::RelayKind::Request if mcpr_core::telemetry::enabled() => {
            let _in_flight = agent.relay_in_flight.hold();
            let context = mcpr_core::telemetry::mcp::TraceContext {
                traceparent: frame.traceparent.clone(),
                tracestate: frame.tracestate.clone(),
            };
            let response = Box::pin(agent.relay_frame_request(
                &frame.provider,
                &frame.client_session,
                message,
                &context,
            ))
            .await;
            Some(reply(&frame, response))
        }
        pb::RelayKind::Request => {
            let _in_flight = agent.relay_in_flight.hold();
            let response = agent
                .relay_request(&frame.provider, &frame.client_session, message)
                .await;
            Some(reply(&frame, response))
        }
        pb::RelayKind::Notification => {
            agent
                .relay_notification(&frame.provider, &frame.client_session, message)
                .await;
            None
        }
        pb::RelayKind::ServerResponse => {
            agent.relay_response(&frame.provider, message).await;
            None
        }
        _ => Some(reply(
            &frame,
            Message::error(
                serde_json::Value::Null,
                &RpcError::new(code::INVALID_REQUEST, "unexpected relay frame kind"),
            ),
        )),
    }
}

fn reply(request: &pb::RelayFrame, message: Message) -> pb::RelayFrame {
    pb::RelayFrame {
        exchange_id: request.exchange_id,
        provider: request.provider.clone(),
        client_session: request.client_session.clone(),
        kind: pb::RelayKind::Response as i32,
        message: message.to_bytes(),
        related_id: String::new(),
        ..Default::default()
    }
}

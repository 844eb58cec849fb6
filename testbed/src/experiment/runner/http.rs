//! A small HTTP/1.1 client on hyper: one kept-alive connection per client.

use std::net::SocketAddr;
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use thiserror::Error;
use tokio::net::TcpStream;

/// Why a request got no answer.
#[derive(Debug, Error)]
pub enum HttpError {
    /// No connection: the request was never sent.
    #[error("cannot connect to {0}: {1}")]
    Connect(SocketAddr, std::io::Error),
    /// Sent (or maybe sent), no complete answer in time.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The connection broke after the request may have been sent.
    #[error("connection lost: {0}")]
    Lost(String),
}

impl HttpError {
    /// Whether the server surely never saw the request.
    pub fn never_sent(&self) -> bool {
        matches!(self, HttpError::Connect(..))
    }
}

/// A connection to one server, opened on first use and again after an error.
pub struct HttpClient {
    addr: SocketAddr,
    sender: Option<SendRequest<Empty<Bytes>>>,
}

impl HttpClient {
    /// A client of `addr`; connects lazily.
    pub fn new(addr: SocketAddr) -> Self {
        Self { addr, sender: None }
    }

    /// Sends one request with an empty body and reads the whole answer,
    /// all within `timeout`.
    pub async fn request(
        &mut self,
        method: Method,
        path: &str,
        timeout: Duration,
    ) -> Result<(StatusCode, Bytes), HttpError> {
        let result = tokio::time::timeout(timeout, self.exchange(method, path)).await;
        match result {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(error)) => {
                self.sender = None;
                Err(error)
            }
            Err(_) => {
                self.sender = None;
                Err(HttpError::Timeout(timeout))
            }
        }
    }

    async fn exchange(
        &mut self,
        method: Method,
        path: &str,
    ) -> Result<(StatusCode, Bytes), HttpError> {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            let stream = TcpStream::connect(self.addr)
                .await
                .map_err(|error| HttpError::Connect(self.addr, error))?;
            let _ = stream.set_nodelay(true);
            let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|error| HttpError::Lost(error.to_string()))?;
            tokio::spawn(connection);
            self.sender = Some(sender);
        }
        let Some(sender) = self.sender.as_mut() else {
            return Err(HttpError::Lost("no connection".into()));
        };
        sender
            .ready()
            .await
            .map_err(|error| HttpError::Lost(error.to_string()))?;
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, self.addr.to_string())
            .body(Empty::new())
            .map_err(|error| HttpError::Lost(error.to_string()))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|error| HttpError::Lost(error.to_string()))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|error| HttpError::Lost(error.to_string()))?
            .to_bytes();
        Ok((status, body))
    }
}

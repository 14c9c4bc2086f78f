//! [`Notifications`]: a stream of one notification method's typed params.

use std::fmt;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::Stream;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use crate::buffer::{Buffer, Popped};
use crate::error::Error;

/// The notifications of one method, with their params decoded as `T`.
/// Made by [`Client::on_notification`](crate::Client::on_notification).
///
/// Items are `Ok(params)`, `Err(Error::Decode(_))` for params that do not
/// decode as `T`, or `Err(Error::Lagged { missed })` when the buffer was full
/// and older notifications were dropped; the stream goes on after an error.
///
/// Notifications that arrive before anyone reads the method wait in a bounded
/// buffer ([`ClientBuilder::buffer`](crate::ClientBuilder::buffer)), so a
/// reader made "late" still gets them. Dropping the stream does not stop the
/// buffering: the next reader of the method gets what arrived meanwhile. The
/// stream ends when the client is closed for good, or when another
/// `on_notification` for the same method takes it over.
pub struct Notifications<T> {
    method: String,
    buffer: Arc<Buffer<Option<Box<RawValue>>>>,
    _params: PhantomData<fn() -> T>,
}

impl<T> Notifications<T> {
    pub(crate) fn new(method: String, buffer: Arc<Buffer<Option<Box<RawValue>>>>) -> Self {
        Self {
            method,
            buffer,
            _params: PhantomData,
        }
    }

    /// The method.
    pub fn method(&self) -> &str {
        &self.method
    }
}

impl<T> fmt::Debug for Notifications<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Notifications").field("method", &self.method).finish()
    }
}

impl<T: DeserializeOwned> Stream for Notifications<T> {
    type Item = Result<T, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.buffer.poll_pop(cx).map(|popped| {
            popped.map(|p| match p {
                Popped::Item(params) => {
                    switchboard_protocol::contract::parse_lenient(params.as_deref().map(RawValue::get))
                        .map_err(Error::Decode)
                }
                Popped::Lagged(missed) => Err(Error::Lagged { missed }),
            })
        })
    }
}

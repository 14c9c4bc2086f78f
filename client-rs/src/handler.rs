//! Handlers of server→client calls, erased to one type.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use switchboard_protocol::{ErrorObject, codes};

use crate::error::RpcError;

/// What a handler's future resolves to: the raw result or the error to send.
pub(crate) type HandlerFuture = Pin<Box<dyn Future<Output = Result<Box<RawValue>, ErrorObject>> + Send>>;

/// A registered handler: takes the raw params, returns the answer's future.
pub(crate) type Handler = Arc<dyn Fn(Option<Box<RawValue>>) -> HandlerFuture + Send + Sync>;

/// Wraps a typed async function as a [`Handler`]: params that do not decode
/// are answered `-32602`, a result that does not serialise `-32603`.
pub(crate) fn erase<P, R, F, Fut>(f: F) -> Handler
where
    P: DeserializeOwned + Send + 'static,
    R: Serialize + Send + 'static,
    F: Fn(P) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R, RpcError>> + Send + 'static,
{
    let f = Arc::new(f);
    Arc::new(move |params: Option<Box<RawValue>>| {
        let f = f.clone();
        Box::pin(async move {
            let params: P = decode_params(params.as_deref())?;
            let result = f(params).await?;
            serde_json::value::to_raw_value(&result).map_err(|e| {
                tracing::warn!(error = %e, "a handler's result could not be serialised");
                ErrorObject::new(codes::INTERNAL_ERROR)
            })
        })
    })
}

/// Decodes params into `P`, or answers `-32602` with the reason.
pub(crate) fn decode_params<P: DeserializeOwned>(params: Option<&RawValue>) -> Result<P, ErrorObject> {
    decode_lenient(params)
        .map_err(|e| ErrorObject::with_data(codes::INVALID_PARAMS, serde_json::json!({ "reason": e.to_string() })))
}

/// Decodes params into `P`. Missing params decode as `null`; so do empty
/// ones (`[]`, `{}`) when `P` does not accept them, so that `()` and
/// `Option<T>` take "no params" in whatever shape the server sends it.
pub(crate) fn decode_lenient<P: DeserializeOwned>(params: Option<&RawValue>) -> Result<P, serde_json::Error> {
    let text = params.map_or("null", RawValue::get);
    serde_json::from_str(text).or_else(|e| match text.trim() {
        "[]" | "{}" => serde_json::from_str("null").map_err(|_| e),
        _ => Err(e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_owned()).expect("valid JSON")
    }

    #[test]
    fn params_decode_leniently_when_empty() {
        let unit: Result<(), _> = decode_params(Some(&raw("[]")));
        assert!(unit.is_ok());
        let none: Option<u8> = decode_params(Some(&raw("{}"))).expect("decodes");
        assert_eq!(none, None);
        let nums: Vec<u8> = decode_params(Some(&raw("[]"))).expect("decodes");
        assert!(nums.is_empty());
        let pair: (u8, String) = decode_params(Some(&raw(r#"[1,"a"]"#))).expect("decodes");
        assert_eq!(pair, (1, "a".to_owned()));
        let bad = decode_params::<(u8,)>(Some(&raw(r#"["x"]"#))).expect_err("fails");
        assert_eq!(bad.code, codes::INVALID_PARAMS);
    }

    #[tokio::test]
    async fn a_handler_answers_typed_results_and_errors() {
        let h = erase(|(a, b): (i64, i64)| async move {
            if b == 0 {
                Err(RpcError::with_message(1, "division by zero"))
            } else {
                Ok(a / b)
            }
        });
        let checks = async {
            assert_eq!(h(Some(raw("[6,3]"))).await.expect("ok").get(), "2");
            assert_eq!(h(Some(raw("[6,0]"))).await.expect_err("err").code, 1);
            assert_eq!(h(None).await.expect_err("err").code, codes::INVALID_PARAMS);
        };
        tokio::time::timeout(std::time::Duration::from_secs(5), checks)
            .await
            .expect("handlers answer in time");
    }
}

//! The JSON-RPC error object.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::codes;

/// A JSON-RPC 2.0 error object: `{code, message, data?}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ErrorObject {
    /// The error code (see [`crate::codes`]).
    pub code: i32,
    /// A short description.
    pub message: String,
    /// Details that help the caller fix the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
}

impl ErrorObject {
    /// An error with the standard message for `code`.
    pub fn new(code: i32) -> Self {
        Self {
            code,
            message: codes::message_for(code).to_owned(),
            data: None,
        }
    }

    /// An error with the standard message for `code` and some `data`.
    pub fn with_data(code: i32, data: serde_json::Value) -> Self {
        Self {
            data: Some(data),
            ..Self::new(code)
        }
    }

    /// An error with its own message.
    pub fn with_message(code: i32, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            data: None,
        }
    }
}

impl std::fmt::Display for ErrorObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code)?;
        if let Some(data) = &self.data {
            write!(f, ": {data}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ErrorObject {}

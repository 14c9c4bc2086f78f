//! The method table: every application method a gateway serves, by name,
//! whichever way it was written. Direct methods (`GatewayBuilder::method`,
//! `::method_async`) and jsonrpsee methods (an `RpcModule` or an
//! `#[rpc(server)]` trait, mounted unchanged through `GatewayBuilder::module`)
//! go into one table with one name check, and a call is looked up once.
//! Methods registered through a typed descriptor (`GatewayBuilder::serve`)
//! keep their description for `rpc.discover`, beside what the gateway
//! declares it calls on clients and pushes to them; every name in the
//! document is unique, whichever way it goes.

use std::collections::HashMap;
use std::sync::Arc;

use jsonrpsee::core::RegisterMethodError;
use jsonrpsee::core::server::{MethodCallback, Methods};
use switchboard_protocol::contract::Described;
use switchboard_protocol::methods;

use crate::error::Error;
use crate::rpc::direct::Handler;

/// How a method is run.
pub(crate) enum Method {
    /// A direct method: called by the gateway with the borrowed request.
    Direct(Handler),
    /// A jsonrpsee method: its callback, called through jsonrpsee's adapter in `dispatch.rs`.
    Jsonrpsee(MethodCallback),
}

/// A method and its latency histogram (`switchboard_call_duration_seconds`),
/// registered with it so that a call never looks a metric up by name.
pub(crate) struct Entry {
    pub(crate) method: Method,
    pub(crate) duration: metrics::Histogram,
}

impl Entry {
    fn new(name: &str, method: Method) -> Self {
        Self {
            duration: crate::metrics::call_duration(name),
            method,
        }
    }
}

/// Application methods by name.
#[derive(Default)]
pub(crate) struct MethodTable {
    by_name: HashMap<Arc<str>, Entry>,
    /// What `rpc.discover` says of the typed methods and of the
    /// client-direction declarations, in the order they were added.
    described: Vec<Described>,
}

impl MethodTable {
    /// The method called `name`, with its name to keep.
    pub(crate) fn get(&self, name: &str) -> Option<(&Arc<str>, &Entry)> {
        self.by_name.get_key_value(name)
    }

    /// Every method's name, in no particular order.
    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(|name| &**name)
    }

    /// The descriptions: typed methods and client-direction declarations.
    pub(crate) fn described(&self) -> &[Described] {
        &self.described
    }

    /// The methods without a description.
    pub(crate) fn untyped(&self) -> impl Iterator<Item = &str> {
        self.names()
            .filter(|name| !self.described.iter().any(|d| d.name() == *name))
    }

    /// The one name check: `rpc.*` is the gateway's own, and a name is
    /// registered once, whichever way.
    fn check(&self, name: &str) -> Result<(), Error> {
        if methods::is_reserved(name) {
            return Err(Error::ReservedMethod(name.to_owned()));
        }
        if self.by_name.contains_key(name) || self.described.iter().any(|d| d.name() == name) {
            return Err(RegisterMethodError::AlreadyRegistered(name.to_owned()).into());
        }
        Ok(())
    }

    /// Adds a direct method with its description.
    pub(crate) fn add_described(&mut self, described: Described, handler: Handler) -> Result<(), Error> {
        self.add_direct(described.name(), handler)?;
        self.described.push(described);
        Ok(())
    }

    /// Describes a method registered without its types (a jsonrpsee
    /// module's, or a direct method that borrows its params): it must be in
    /// the table, and described once.
    pub(crate) fn describe(&mut self, described: Described) -> Result<(), Error> {
        let name = described.name();
        if !self.by_name.contains_key(name) {
            return Err(RegisterMethodError::MethodNotFound(name.to_owned()).into());
        }
        if self.described.iter().any(|d| d.name() == name) {
            return Err(RegisterMethodError::AlreadyRegistered(name.to_owned()).into());
        }
        self.described.push(described);
        Ok(())
    }

    /// Declares a method the gateway calls on clients, or a notification it
    /// pushes: listed by `rpc.discover`, never served.
    pub(crate) fn declare(&mut self, described: Described) -> Result<(), Error> {
        self.check(described.name())?;
        self.described.push(described);
        Ok(())
    }

    /// Adds a direct method.
    pub(crate) fn add_direct(&mut self, name: &str, handler: Handler) -> Result<(), Error> {
        self.check(name)?;
        self.by_name
            .insert(name.into(), Entry::new(name, Method::Direct(handler)));
        Ok(())
    }

    /// Adds every method of a jsonrpsee module, or none if one name is
    /// refused.
    pub(crate) fn add_module(&mut self, module: Methods) -> Result<(), Error> {
        let names: Vec<&'static str> = module.method_names().collect();
        for (i, name) in names.iter().enumerate() {
            self.check(name)?;
            if names[..i].contains(name) {
                return Err(RegisterMethodError::AlreadyRegistered((*name).to_owned()).into());
            }
        }
        for name in names {
            if let Some(callback) = module.method(name) {
                self.by_name
                    .insert(name.into(), Entry::new(name, Method::Jsonrpsee(callback.clone())));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use jsonrpsee::RpcModule;

    use super::MethodTable;
    use crate::error::Error;
    use crate::rpc::direct::erase;

    fn module(names: &[&'static str]) -> RpcModule<()> {
        let mut m = RpcModule::new(());
        for name in names {
            m.register_method(name, |_, _, _| "ok").expect("distinct names");
        }
        m
    }

    #[test]
    fn one_name_check_for_both_kinds() {
        let mut table = MethodTable::default();
        table.add_module(module(&["a", "b"]).into()).expect("new names");
        table
            .add_direct("c", erase(|_| Ok::<_, switchboard_protocol::ErrorObject>(1)))
            .expect("a new name");
        assert!(matches!(
            table.add_direct("a", erase(|_| Ok::<_, switchboard_protocol::ErrorObject>(1))),
            Err(Error::Register(_))
        ));
        assert!(matches!(
            table.add_module(module(&["d", "c"]).into()),
            Err(Error::Register(_))
        ));
        assert!(table.get("d").is_none(), "a refused module adds nothing");
        assert!(matches!(
            table.add_direct("rpc.mine", erase(|_| Ok::<_, switchboard_protocol::ErrorObject>(1))),
            Err(Error::ReservedMethod(_))
        ));
        let mut names: Vec<&str> = table.names().collect();
        names.sort_unstable();
        assert_eq!(names, ["a", "b", "c"]);
    }
}

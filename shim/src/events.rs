//! Task events to containerd: `Events/Forward` on TTRPC_ADDRESS, in the
//! order they were raised. A failed send (containerd restarting) keeps the
//! event queued; the event loop retries until it goes through.

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime};

use containerd_shim_protos::events::task as ev;
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim_protos::protobuf::Message;
use containerd_shim_protos::shim::event::Envelope;
use containerd_shim_protos::shim::events::ForwardRequest;

use crate::wire::{self, Client};

const SERVICE: &str = "containerd.services.events.ttrpc.v1.Events";
/// Beyond this, the oldest events are dropped (containerd gone for good).
const MAX_QUEUED: usize = 4096;
const RETRY: Duration = Duration::from_millis(200);

pub struct Publisher {
    address: String,
    namespace: String,
    client: Option<Client>,
    queue: VecDeque<Envelope>,
    retry_at: Option<Instant>,
    pub last_error: Option<String>,
}

pub fn timestamp(t: SystemTime) -> Timestamp {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let mut ts = Timestamp::new();
    ts.seconds = d.as_secs() as i64;
    ts.nanos = d.subsec_nanos() as i32;
    ts
}

/// A message with containerd's type URL for it (its proto full name).
/// Spelled out rather than read from the reflection descriptors: those
/// cost heap in every idle shim and code in the binary.
pub trait TypeUrl: Message {
    const TYPE_URL: &'static str;
}

/// An `Any` holding `m`.
pub fn any<M: TypeUrl>(m: &M) -> Any {
    let mut a = Any::new();
    a.type_url = M::TYPE_URL.to_string();
    a.value = m.write_to_bytes().unwrap_or_default();
    a
}

macro_rules! type_urls {
    ($($t:ty => $s:expr),* $(,)?) => { $(impl TypeUrl for $t { const TYPE_URL: &'static str = $s; })* };
}

type_urls! {
    ev::TaskCreate => "containerd.events.TaskCreate",
    ev::TaskStart => "containerd.events.TaskStart",
    ev::TaskExit => "containerd.events.TaskExit",
    ev::TaskDelete => "containerd.events.TaskDelete",
    ev::TaskExecAdded => "containerd.events.TaskExecAdded",
    ev::TaskExecStarted => "containerd.events.TaskExecStarted",
    ev::TaskPaused => "containerd.events.TaskPaused",
    ev::TaskResumed => "containerd.events.TaskResumed",
    ev::TaskOOM => "containerd.events.TaskOOM",
    containerd_shim_protos::shim::oci::ProcessDetails => "containerd.runc.v1.ProcessDetails",
    containerd_shim_protos::cgroups::metrics::Metrics => "io.containerd.cgroups.v1.Metrics",
    containerd_shim_protos::cgroups_v2::metrics::Metrics => "io.containerd.cgroups.v2.Metrics",
}

/// The topic of each event message.
pub trait Topic: TypeUrl {
    const TOPIC: &'static str;
}

macro_rules! topics {
    ($($t:ty => $s:expr),* $(,)?) => { $(impl Topic for $t { const TOPIC: &'static str = $s; })* };
}

topics! {
    ev::TaskCreate => "/tasks/create",
    ev::TaskStart => "/tasks/start",
    ev::TaskExit => "/tasks/exit",
    ev::TaskDelete => "/tasks/delete",
    ev::TaskExecAdded => "/tasks/exec-added",
    ev::TaskExecStarted => "/tasks/exec-started",
    ev::TaskPaused => "/tasks/paused",
    ev::TaskResumed => "/tasks/resumed",
    ev::TaskOOM => "/tasks/oom",
}

impl Publisher {
    pub fn new(address: String, namespace: String) -> Publisher {
        Publisher {
            address,
            namespace,
            client: None,
            queue: VecDeque::new(),
            retry_at: None,
            last_error: None,
        }
    }

    pub fn publish<E: Topic>(&mut self, e: &E) {
        let mut env = Envelope::new();
        env.timestamp = Some(timestamp(SystemTime::now())).into();
        env.namespace = self.namespace.clone();
        env.topic = E::TOPIC.to_string();
        env.event = Some(any(e)).into();
        if self.queue.len() >= MAX_QUEUED {
            self.queue.pop_front();
        }
        self.queue.push_back(env);
    }

    #[cfg(test)]
    pub fn pending(&self) -> usize {
        self.queue.len()
    }

    /// When the loop must wake up to retry, if anything is queued.
    pub fn wake_at(&self) -> Option<Instant> {
        if self.queue.is_empty() {
            None
        } else {
            Some(self.retry_at.unwrap_or_else(Instant::now))
        }
    }

    /// Send what is queued, in order; stop at the first failure.
    pub fn flush(&mut self) {
        if self.address.is_empty() {
            self.queue.clear();
            return;
        }
        if self.retry_at.is_some_and(|t| Instant::now() < t) {
            return;
        }
        while let Some(env) = self.queue.front().cloned() {
            match self.send(&env) {
                Ok(()) => {
                    self.queue.pop_front();
                    self.retry_at = None;
                }
                Err(e) => {
                    self.last_error = Some(e.to_string());
                    self.client = None;
                    self.retry_at = Some(Instant::now() + RETRY);
                    return;
                }
            }
        }
    }

    fn send(&mut self, env: &Envelope) -> Result<(), wire::WireError> {
        if self.client.is_none() {
            self.client = Some(Client::connect(&self.address, Duration::from_secs(5))?);
        }
        let mut req = ForwardRequest::new();
        req.envelope = Some(env.clone()).into();
        let payload = wire::encode(&req)?;
        let c = self.client.as_mut().ok_or_else(|| wire::WireError::Io {
            op: "connect",
            source: std::io::ErrorKind::NotConnected.into(),
        })?;
        c.call(SERVICE, "Forward", payload).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The spelled-out URLs are the proto full names containerd registers.
    #[test]
    fn type_urls_are_proto_names() {
        use containerd_shim_protos::protobuf::MessageFull;
        fn check<M: TypeUrl + MessageFull>() {
            assert_eq!(M::TYPE_URL, M::descriptor().full_name());
        }
        check::<ev::TaskCreate>();
        check::<ev::TaskStart>();
        check::<ev::TaskExit>();
        check::<ev::TaskDelete>();
        check::<ev::TaskExecAdded>();
        check::<ev::TaskExecStarted>();
        check::<ev::TaskPaused>();
        check::<ev::TaskResumed>();
        check::<ev::TaskOOM>();
        check::<containerd_shim_protos::shim::oci::ProcessDetails>();
        check::<containerd_shim_protos::cgroups::metrics::Metrics>();
        check::<containerd_shim_protos::cgroups_v2::metrics::Metrics>();
        assert_eq!(ev::TaskOOM::TOPIC, "/tasks/oom");
    }

    #[test]
    fn queue_keeps_order_while_containerd_is_away() {
        let mut p = Publisher::new("/nonexistent/ttrpc.sock".into(), "ns".into());
        let mut c = ev::TaskCreate::new();
        c.container_id = "a".into();
        p.publish(&c);
        p.publish(&ev::TaskStart::new());
        p.flush();
        assert_eq!(p.pending(), 2);
        assert!(p.last_error.is_some());
        assert_eq!(p.queue[0].topic, "/tasks/create");
        assert_eq!(p.queue[1].topic, "/tasks/start");
    }
}

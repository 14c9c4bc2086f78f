//! Micro-benchmarks of routing through the public [`Hub`] API with real
//! sessions: a gateway in this process, N WebSocket clients reading on
//! another runtime. What is timed is the Hub call itself — serialising the
//! frame once, finding the sessions, queueing the shared bytes on each —
//! not the sockets: after each batch the clients catch up untimed, so that
//! no queue overflows. Run with `cargo bench -p switchboard-server --bench hub`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use futures_util::StreamExt;
use serde_json::value::RawValue;
use switchboard_server::{Config, Gateway, Hub, Target};

/// Publications timed between two catch-ups.
const BATCH: u64 = 50;

struct Bench {
    hub: Hub,
    received: Arc<AtomicU64>,
    _clients: tokio::runtime::Runtime,
    server: tokio::runtime::Runtime,
}

impl Bench {
    /// A gateway with `sessions` clients, users `u0`…, all subscribed to `bench`.
    fn new(sessions: usize) -> Self {
        let server = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let clients = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let (hub, addr) = server.block_on(async {
            let mut config = Config::default();
            // Every client comes from 127.0.0.1.
            config.limits.upgrades_per_ip_per_minute = u32::MAX;
            let gateway = Gateway::builder(config).build().unwrap();
            let hub = gateway.hub().clone();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(gateway.serve(listener, std::future::pending()));
            (hub, addr)
        });
        let received = Arc::new(AtomicU64::new(0));
        clients.block_on(async {
            for i in 0..sessions {
                let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws?user=u{i}"))
                    .await
                    .unwrap();
                // The welcome frame: the session is registered.
                ws.next().await.unwrap().unwrap();
                let received = received.clone();
                tokio::spawn(async move {
                    while let Some(Ok(_)) = ws.next().await {
                        received.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
        });
        server
            .block_on(hub.subscribe(Target::All, vec!["bench".to_owned()]))
            .unwrap();
        Self {
            hub,
            received,
            _clients: clients,
            server,
        }
    }

    /// Waits until the clients have read `count` frames in all.
    fn catch_up(&self, count: u64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.received.load(Ordering::Relaxed) < count {
            assert!(Instant::now() < deadline, "the clients fell behind");
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// Times `iters` calls of `op`, each reaching `per_op` sessions, in
    /// batches with untimed catch-ups in between.
    fn time<F, Fut>(&self, iters: u64, per_op: u64, op: F) -> Duration
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let mut timed = Duration::ZERO;
        let mut done = 0;
        while done < iters {
            let n = BATCH.min(iters - done);
            let expected = self.received.load(Ordering::Relaxed) + n * per_op;
            let started = Instant::now();
            self.server.block_on(async {
                for _ in 0..n {
                    op().await;
                }
            });
            timed += started.elapsed();
            done += n;
            self.catch_up(expected);
        }
        timed
    }
}

fn fanout(c: &mut Criterion) {
    let data =
        RawValue::from_string(r#"{"seq":1,"text":"the quick brown fox jumps over the lazy dog"}"#.to_owned()).unwrap();
    let mut group = c.benchmark_group("hub_publish");
    group.sample_size(20);
    for sessions in [1usize, 100, 1000] {
        let bench = Bench::new(sessions);
        group.throughput(Throughput::Elements(sessions as u64));
        group.bench_with_input(BenchmarkId::from_parameter(sessions), &sessions, |b, &n| {
            b.iter_custom(|iters| {
                bench.time(iters, n as u64, || async {
                    bench.hub.publish_raw("bench", &data).await.unwrap();
                })
            })
        });
    }
    group.finish();
}

fn lookups(c: &mut Criterion) {
    let bench = Bench::new(1000);
    let params = RawValue::from_string(r#"{"text":"hi"}"#.to_owned()).unwrap();
    let mut group = c.benchmark_group("hub_lookup");
    group.sample_size(20);
    group.bench_function("notify_one_user_of_1000", |b| {
        b.iter_custom(|iters| {
            bench.time(iters, 1, || async {
                bench
                    .hub
                    .notify_raw(Target::User("u500".to_owned()), "chat.message", Some(&params))
                    .await
                    .unwrap();
            })
        })
    });
    group.bench_function("presence_of_one_user_of_1000", |b| {
        b.iter(|| bench.server.block_on(bench.hub.presence(Some("u500"))).unwrap().len())
    });
    group.finish();
}

criterion_group!(benches, fanout, lookups);
criterion_main!(benches);

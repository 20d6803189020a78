//! Prometheus metrics, served at `/metrics`.

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, Opts, Registry, TextEncoder,
};
use std::sync::OnceLock;

pub struct Metrics {
    pub registry: Registry,
    pub events_accepted: IntCounter,
    pub events_duplicate: IntCounter,
    pub events_rejected: IntCounterVec,
    pub profiles_created: IntCounter,
    pub merges: IntCounter,
    pub conflicts: IntCounter,
    /// Placeholder identifiers taken out of messages before resolution.
    pub identifiers_dropped: IntCounter,
    /// Messages not stored because they carry an erased person's identifier.
    pub messages_erased: IntCounter,
    /// Anonymous people and old events removed by the retention job.
    pub retention_people: IntCounter,
    pub retention_events: IntCounter,
    /// Time from a batch entering the writer queue to its commit.
    pub ingest_seconds: Histogram,
    pub group_size: Histogram,
}

pub fn metrics() -> &'static Metrics {
    static M: OnceLock<Metrics> = OnceLock::new();
    M.get_or_init(|| {
        let registry = Registry::new();
        let c = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let events_accepted = c("rapport_events_accepted_total", "Events stored");
        let events_duplicate = c(
            "rapport_events_duplicate_total",
            "Events skipped as already stored (same messageId)",
        );
        let profiles_created = c(
            "rapport_profiles_created_total",
            "Profiles created by ingestion",
        );
        let merges = c(
            "rapport_merges_total",
            "Profile merges made by identity resolution",
        );
        let conflicts = c(
            "rapport_merge_conflicts_total",
            "Merges refused by merge protection",
        );
        let identifiers_dropped = c(
            "rapport_identifiers_dropped_total",
            "Blocked (placeholder) identifiers dropped from identity resolution",
        );
        let messages_erased = c(
            "rapport_messages_erased_total",
            "Messages not stored because they carry an erased person's identifier",
        );
        let retention_people = c(
            "rapport_retention_people_total",
            "Anonymous people erased by the retention job",
        );
        let retention_events = c(
            "rapport_retention_events_total",
            "Events deleted by the retention job (their daily counts kept)",
        );
        let events_rejected = IntCounterVec::new(
            Opts::new(
                "rapport_events_rejected_total",
                "Requests or messages rejected, by reason",
            ),
            &["reason"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(events_rejected.clone()))
            .expect("unique metric");
        let ingest_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "rapport_ingest_seconds",
                "Batch latency from queue to durable commit",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
        )
        .expect("valid metric");
        registry
            .register(Box::new(ingest_seconds.clone()))
            .expect("unique metric");
        let group_size = Histogram::with_opts(
            HistogramOpts::new(
                "rapport_ingest_group_messages",
                "Messages committed per writer transaction",
            )
            .buckets(prometheus::exponential_buckets(1.0, 4.0, 9).expect("valid buckets")),
        )
        .expect("valid metric");
        registry
            .register(Box::new(group_size.clone()))
            .expect("unique metric");
        Metrics {
            registry,
            events_accepted,
            events_duplicate,
            events_rejected,
            profiles_created,
            merges,
            conflicts,
            identifiers_dropped,
            messages_erased,
            retention_people,
            retention_events,
            ingest_seconds,
            group_size,
        }
    })
}

pub fn render() -> String {
    let mut buf = Vec::new();
    let _ = TextEncoder::new().encode(&metrics().registry.gather(), &mut buf);
    String::from_utf8(buf).unwrap_or_default()
}

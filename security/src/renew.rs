//! Certificate renewal: when a node renews its certificate, and the loop that does it.
//!
//! * [`renew_at`] / [`next`] — pure: renew at 2/3 of the certificate's lifetime (24 h
//!   certificates: ~16 h after issue), from `(not_before, not_after, now)` in Unix seconds.
//! * [`run`] — the loop: waits (on an injected [`RenewClock`]) until [`next`] says renew, calls
//!   `renew` (a new key + CSR signed by the CA: `RenewCertificate` for agents, the CA in the store
//!   for controllers), hands the new material to `apply` (which swaps it into the running rustls
//!   configs: `ServerTls::set` / `ClientTls::set`, no restart), and retries a failed renewal
//!   every [`RETRY_SECS`] until the old certificate lapses (and after: a lapsed node keeps trying).

use crate::TlsMaterial;
use futures::future::BoxFuture;
use std::sync::Arc;

/// Pause after a failed renewal.
pub const RETRY_SECS: i64 = 30;

/// Least time between two renewals of one certificate, so a certificate that is due as soon as
/// it arrives (a node clock far ahead of the CA's) cannot spin the loop.
pub const MIN_RENEWAL_GAP_SECS: i64 = 10;

/// When a certificate valid `not_before..not_after` should be renewed: at 2/3 of its lifetime
/// counted from its issue. The CA backdates `not_before` by [`crate::ca::BACKDATE`] (clock
/// skew), so a certificate longer than that was issued `BACKDATE` after its `not_before`;
/// counting from `not_before` would make a short certificate (`--cert-ttl 60s`: 360 s of
/// validity, 300 of them in the past) due the moment it is issued.
pub fn renew_at(not_before: i64, not_after: i64) -> i64 {
    let backdate = crate::ca::BACKDATE.as_secs() as i64;
    let issued = if not_after - not_before > backdate { not_before + backdate } else { not_before };
    let life = (not_after - issued).max(0);
    issued + life * 2 / 3
}

/// What to do at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    RenewNow,
    /// Sleep until this Unix second, then ask again.
    WaitUntil(i64),
}

/// The renewal decision for a certificate valid `not_before..not_after` at `now`.
pub fn next(not_before: i64, not_after: i64, now: i64) -> Next {
    let at = renew_at(not_before, not_after);
    if now >= at { Next::RenewNow } else { Next::WaitUntil(at) }
}

/// Time for the renewal loop (Unix seconds), injected so tests can run it on a fake clock.
pub trait RenewClock: Send + Sync {
    fn now(&self) -> i64;
    /// Resolves once `now() >= at`.
    fn sleep_until(&self, at: i64) -> BoxFuture<'_, ()>;
}

/// The wall clock.
pub struct SystemClock;

impl RenewClock for SystemClock {
    fn now(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    }
    fn sleep_until(&self, at: i64) -> BoxFuture<'_, ()> {
        let wait = (at - self.now()).max(0) as u64;
        Box::pin(tokio::time::sleep(std::time::Duration::from_secs(wait)))
    }
}

/// A renewed certificate: the new material and its validity (Unix seconds).
#[derive(Clone, Debug)]
pub struct Renewed {
    pub material: TlsMaterial,
    pub not_before: i64,
    pub not_after: i64,
}

/// Renews whenever [`next`] says so until `stop` resolves: `renew` gets a new certificate,
/// `apply` installs it (swapping the running configs). `validity` is the current certificate's.
/// Errors (the caller's type: a controller's are [`crate::SecurityError`], an agent's its own)
/// are logged and retried.
pub async fn run<R, A, E>(
    what: &str,
    clock: Arc<dyn RenewClock>,
    mut validity: (i64, i64),
    mut renew: R,
    apply: A,
    stop: impl std::future::Future<Output = ()>,
) where
    R: FnMut() -> BoxFuture<'static, std::result::Result<Renewed, E>>,
    A: Fn(&Renewed) -> std::result::Result<(), E>,
    E: std::fmt::Display,
{
    let mut stop = std::pin::pin!(stop);
    // No renewal before this (Unix seconds): [`MIN_RENEWAL_GAP_SECS`] after the last one.
    let mut earliest = i64::MIN;
    loop {
        let now = clock.now();
        let decision = match next(validity.0, validity.1, now) {
            Next::RenewNow if now < earliest => Next::WaitUntil(earliest),
            Next::WaitUntil(at) => Next::WaitUntil(at.max(earliest)),
            d => d,
        };
        match decision {
            Next::WaitUntil(at) => {
                tokio::select! {
                    _ = &mut stop => return,
                    _ = clock.sleep_until(at) => {}
                }
            }
            Next::RenewNow => {
                let result = tokio::select! {
                    _ = &mut stop => return,
                    r = renew() => r,
                };
                match result.and_then(|r| apply(&r).map(|_| r)) {
                    Ok(r) => {
                        tracing::info!(
                            what,
                            old_not_after = validity.1,
                            not_after = r.not_after,
                            "certificate renewed; new connections use it"
                        );
                        validity = (r.not_before, r.not_after);
                        earliest = now.saturating_add(MIN_RENEWAL_GAP_SECS);
                    }
                    Err(e) => {
                        let left = validity.1 - now;
                        tracing::warn!(what, error = %e, seconds_left = left, "certificate renewal failed; retrying");
                        tokio::select! {
                            _ = &mut stop => return,
                            _ = clock.sleep_until(now + RETRY_SECS) => {}
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Result;
    use crate::{CertificateAuthority, ClientAuth, DEFAULT_CA_TTL, Identity, NodeKey, ServerTls};
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicI64, Ordering};
    use std::time::Duration;

    #[test]
    fn renewal_is_due_at_two_thirds_of_the_lifetime() {
        // A 24 h certificate issued at `t`, backdated 5 minutes (as the CA issues them):
        // due 16 h after issue.
        let t = 1_000_000;
        let (nb, na) = (t - 300, t + 86_400);
        assert_eq!(renew_at(nb, na), t + 57_600);
        assert_eq!(next(nb, na, nb), Next::WaitUntil(t + 57_600));
        assert_eq!(next(nb, na, t + 57_599), Next::WaitUntil(t + 57_600));
        assert_eq!(next(nb, na, t + 57_600), Next::RenewNow);
        assert_eq!(next(nb, na, na + 10), Next::RenewNow, "a lapsed certificate renews at once");
        assert_eq!(next(5, 5, 0), Next::WaitUntil(5), "zero lifetime");
        // The shortest `--cert-ttl` (60 s) is due 40 s after issue, not at once.
        assert_eq!(next(t - 300, t + 60, t), Next::WaitUntil(t + 40));
        // Not backdated (shorter than the backdate): 2/3 from not_before.
        assert_eq!(renew_at(t, t + 120), t + 80);
    }

    /// A clock the test moves: `sleep_until` jumps to its target if it is within `limit`, and
    /// otherwise waits for the limit to be raised.
    struct FakeClock {
        now: AtomicI64,
        limit: AtomicI64,
        raised: tokio::sync::Notify,
    }

    impl RenewClock for FakeClock {
        fn now(&self) -> i64 {
            self.now.load(Ordering::SeqCst)
        }
        fn sleep_until(&self, at: i64) -> BoxFuture<'_, ()> {
            Box::pin(async move {
                while at > self.limit.load(Ordering::SeqCst) {
                    self.raised.notified().await;
                }
                self.now.fetch_max(at, Ordering::SeqCst);
            })
        }
    }

    fn wall() -> i64 {
        SystemClock.now()
    }

    /// The certificate a TLS client sees on `addr`.
    async fn served_cert(addr: std::net::SocketAddr, roots: &TlsMaterial) -> Vec<u8> {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from(crate::CONTROLLER_SERVER_NAME).unwrap();
        let connector = tokio_rustls::TlsConnector::from(roots.client_config().unwrap());
        let tls = connector.connect(name, tcp).await.unwrap();
        tls.get_ref().1.peer_certificates().unwrap()[0].as_ref().to_vec()
    }

    #[tokio::test]
    async fn a_certificate_due_on_arrival_is_renewed_at_most_once_per_gap() {
        let start = 1_000_000;
        let clock = Arc::new(FakeClock {
            now: AtomicI64::new(start),
            limit: AtomicI64::new(start + 2 * MIN_RENEWAL_GAP_SECS + 5),
            raised: tokio::sync::Notify::new(),
        });
        let calls: Arc<Mutex<Vec<i64>>> = Arc::default();
        let ca = CertificateAuthority::create("gap test", start, DEFAULT_CA_TTL).unwrap();
        let material = TlsMaterial { roots: vec![ca.cert_der().clone()], chain: vec![], key: None };
        let renew = {
            let (clock, calls) = (clock.clone(), calls.clone());
            move || -> BoxFuture<'static, Result<Renewed>> {
                calls.lock().unwrap().push(clock.now());
                // Already lapsed when it arrives (say the node's clock is far ahead).
                let r = Renewed { material: material.clone(), not_before: 0, not_after: 1 };
                Box::pin(async move { Ok(r) })
            }
        };
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let looped = tokio::spawn(run("gap", clock.clone(), (0, 1), renew, |_| Ok(()), async {
            let _ = stop_rx.await;
        }));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while calls.lock().unwrap().len() < 3 {
            assert!(tokio::time::Instant::now() < deadline, "{:?}", calls.lock().unwrap());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let gap = MIN_RENEWAL_GAP_SECS;
        assert_eq!(calls.lock().unwrap()[..3], [start, start + gap, start + 2 * gap]);
        let _ = stop_tx.send(());
        looped.await.unwrap();
        assert_eq!(calls.lock().unwrap().len(), 3, "the next one is beyond the clock's limit");
    }

    #[tokio::test]
    async fn an_expiring_certificate_is_replaced_in_the_running_listener_before_it_lapses() {
        // Real TLS checks validity by the wall clock: the first certificate is short-lived
        // (450 s, backdated 300 s), so its renewal point (wall + 300 s) leaves the next
        // certificate, issued at the fake time, already valid by the wall clock.
        let start = wall();
        let ca =
            Arc::new(CertificateAuthority::create("renew test", start, DEFAULT_CA_TTL).unwrap());
        let identity = Identity::controller(1).unwrap();
        let issue = {
            let ca = ca.clone();
            let identity = identity.clone();
            move |now: i64, ttl: u64| -> Result<(Renewed, Vec<u8>)> {
                let key = NodeKey::generate()?;
                let cert =
                    ca.sign_csr(&key.csr_pem()?, &identity, now, Duration::from_secs(ttl))?;
                let material =
                    TlsMaterial::from_pem(ca.cert_pem(), Some((&cert.cert_pem, &key.key_pem())))?;
                let renewed =
                    Renewed { material, not_before: cert.not_before, not_after: cert.not_after };
                Ok((renewed, cert.cert_der))
            }
        };
        let (first, first_der) = issue(start, 450).unwrap();
        let server =
            ServerTls::new(first.material.server_config(ClientAuth::Optional, None).unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut incoming = server.incoming(listener);
        tokio::spawn(async move {
            use tokio_stream::StreamExt;
            let mut open = vec![];
            while let Some(s) = incoming.next().await {
                open.push(s);
            }
        });
        let trust = TlsMaterial { roots: vec![ca.cert_der().clone()], chain: vec![], key: None };
        assert_eq!(served_cert(addr, &trust).await, first_der);

        let clock = Arc::new(FakeClock {
            now: AtomicI64::new(start),
            limit: AtomicI64::new(first.not_after - 1),
            raised: tokio::sync::Notify::new(),
        });
        // (fake time of the renewal, the certificate it issued)
        type Log = Mutex<Vec<(i64, Vec<u8>)>>;
        let renewals: Arc<Log> = Arc::default();
        let renew = {
            let clock = clock.clone();
            let renewals = renewals.clone();
            let issue = issue.clone();
            move || -> BoxFuture<'static, Result<Renewed>> {
                let now = clock.now();
                let result = issue(now, 86_400).map(|(r, der)| {
                    renewals.lock().unwrap().push((now, der));
                    r
                });
                Box::pin(async move { result })
            }
        };
        let apply = {
            let server = server.clone();
            move |r: &Renewed| -> Result<()> {
                server.set(r.material.server_config(ClientAuth::Optional, None)?);
                Ok(())
            }
        };
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let validity = (first.not_before, first.not_after);
        let looped = tokio::spawn(run("test", clock.clone(), validity, renew, apply, async move {
            let _ = stop_rx.await;
        }));
        // The loop renews once, at 2/3 of the first certificate's life, then waits for the
        // second one's renewal point (beyond the fake clock's limit).
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while renewals.lock().unwrap().is_empty() {
            assert!(tokio::time::Instant::now() < deadline, "no renewal within 10 s");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let (at, second_der) = renewals.lock().unwrap()[0].clone();
        assert_eq!(at, renew_at(first.not_before, first.not_after));
        assert!(at < first.not_after, "renewed before the old certificate lapsed");
        // The running listener now presents the new certificate (no restart).
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let seen = served_cert(addr, &trust).await;
            if seen == second_der {
                break;
            }
            assert_eq!(seen, first_der);
            assert!(
                tokio::time::Instant::now() < deadline,
                "listener still serves the old certificate"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(renewals.lock().unwrap().len(), 1, "one renewal per certificate");
        let _ = stop_tx.send(());
        looped.await.unwrap();
    }
}

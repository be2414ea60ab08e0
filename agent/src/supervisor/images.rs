//! Making a container's image available, per the pull behaviour (ECS_IMAGE_PULL_BEHAVIOR):
//!
//! * `default`: try to pull; if the pull fails, use the cached image if there is one.
//! * `always`: pull; a failed pull fails the task.
//! * `once`: pull only the first time this agent uses the image, or again if the cached copy
//!   has gone; afterwards use the cache. A failed first pull falls back to an image that was
//!   already cached (it did not come from this agent, but it is the image the user named).
//! * `prefer-cached`: use the cached image; pull only if it is absent.
//!
//! The "pulled by this agent" record lives in memory: a restarted agent pulls each image once
//! more under `once`.
//!
//! Pulls of one image are single-flight: a task that asks while a pull of its image is in
//! flight waits for that pull and takes its result (it finishes after the task asked, so it is
//! as fresh as a pull of its own). Fifty tasks of one service starting together cause one pull,
//! not fifty (fifty concurrent failing pulls made the engine's registry lookups time out in
//! waves of 5 s).

use crate::config::PullBehavior;
use crate::runtime::ContainerRuntime;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use tokio::time::Instant;

/// The last pull of one image: when it finished and how.
type LastPull = Option<(Instant, Result<(), String>)>;

/// Remembers which images this agent has pulled (for `once`), and serialises pulls per image.
#[derive(Debug, Default)]
pub struct ImagePreparer {
    pulled: Mutex<HashSet<String>>,
    pulls: Mutex<HashMap<String, Arc<tokio::sync::Mutex<LastPull>>>>,
}

impl ImagePreparer {
    /// Pulls `image`, or takes the result of a pull of it that finished after this call began
    /// (one that was in flight, or queued ahead, when this call arrived).
    async fn pull_shared(
        &self,
        runtime: &dyn ContainerRuntime,
        image: &str,
    ) -> Result<(), crate::runtime::RuntimeError> {
        let asked = Instant::now();
        let slot = self
            .pulls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(image.to_string())
            .or_default()
            .clone();
        let mut last = slot.lock().await;
        if let Some((finished, r)) = &*last
            && *finished >= asked
        {
            return r.clone().map_err(|message| crate::runtime::RuntimeError::Pull {
                image: image.to_string(),
                message,
            });
        }
        let r = runtime.pull_image(image).await;
        *last = Some((Instant::now(), r.as_ref().map(|_| ()).map_err(pull_message)));
        r
    }

    fn was_pulled(&self, image: &str) -> bool {
        self.pulled.lock().unwrap_or_else(|e| e.into_inner()).contains(image)
    }

    fn mark_pulled(&self, image: &str) {
        self.pulled.lock().unwrap_or_else(|e| e.into_inner()).insert(image.to_string());
    }

    /// Returns the `CannotPullContainerError: …` reason when the image cannot be had.
    pub async fn prepare(
        &self,
        runtime: &dyn ContainerRuntime,
        image: &str,
        behavior: PullBehavior,
    ) -> Result<(), String> {
        let cached = || async {
            runtime.image_present(image).await.map_err(|e| format!("CannotPullContainerError: {e}"))
        };
        let pull = || async {
            let r = self.pull_shared(runtime, image).await;
            if r.is_ok() {
                self.mark_pulled(image);
            }
            r.map_err(|e| format!("CannotPullContainerError: {e}"))
        };
        match behavior {
            PullBehavior::Always => pull().await,
            PullBehavior::PreferCached => {
                if cached().await? {
                    Ok(())
                } else {
                    pull().await
                }
            }
            PullBehavior::Once => {
                let is_cached = cached().await?;
                if is_cached && self.was_pulled(image) {
                    return Ok(());
                }
                match pull().await {
                    Ok(()) => Ok(()),
                    Err(e) if is_cached => {
                        tracing::warn!(image, error = %e, "first pull failed; using the cached image");
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            }
            PullBehavior::Default => match pull().await {
                Ok(()) => Ok(()),
                Err(e) => {
                    if cached().await? {
                        tracing::warn!(image, error = %e, "pull failed; using the cached image");
                        Ok(())
                    } else {
                        Err(e)
                    }
                }
            },
        }
    }
}

/// The message of a failed pull, as shared with the tasks that joined it.
fn pull_message(e: &crate::runtime::RuntimeError) -> String {
    match e {
        crate::runtime::RuntimeError::Pull { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::SimulatedRuntime;

    #[tokio::test]
    async fn tasks_arriving_during_a_pull_share_it() {
        let prep = ImagePreparer::default();
        let rt = SimulatedRuntime::new();
        rt.add_registry_image("remote:1");
        // A pull of the image is in flight (this test holds its slot).
        let slot = prep.pulls.lock().unwrap().entry("remote:1".into()).or_default().clone();
        let mut in_flight = slot.lock().await;
        let waiting = futures::future::join_all(
            (0..5).map(|_| prep.prepare(&rt, "remote:1", PullBehavior::Always)),
        );
        let mut waiting = Box::pin(waiting);
        assert!(futures::poll!(&mut waiting).is_pending(), "the callers wait for the pull");
        *in_flight = Some((Instant::now(), Err("registry says no".into())));
        drop(in_flight);
        let results = waiting.await;
        assert_eq!(rt.pull_count("remote:1"), 0, "nobody pulled on their own");
        for r in results {
            assert_eq!(
                r.err().as_deref(),
                Some("CannotPullContainerError: image pull failed for remote:1: registry says no")
            );
        }
        // A caller arriving after that pull finished pulls afresh.
        assert!(prep.prepare(&rt, "remote:1", PullBehavior::Always).await.is_ok());
        assert_eq!(rt.pull_count("remote:1"), 1);
    }
}

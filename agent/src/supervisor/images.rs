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

use crate::config::PullBehavior;
use crate::runtime::ContainerRuntime;
use std::collections::HashSet;
use std::sync::Mutex;

/// Remembers which images this agent has pulled (for `once`).
#[derive(Debug, Default)]
pub struct ImagePreparer {
    pulled: Mutex<HashSet<String>>,
}

impl ImagePreparer {
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
            let r = runtime.pull_image(image).await;
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

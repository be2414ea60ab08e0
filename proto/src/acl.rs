//! `Debug` of `CreateAclTokenReply`, the one message carrying an API token secret: the secret
//! is redacted (`build.rs` skips the derived `Debug`).

use crate::v1;

impl std::fmt::Debug for v1::CreateAclTokenReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateAclTokenReply")
            .field("token", &self.token)
            .field("secret", &crate::secrets::REDACTED)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn debug_hides_the_secret() {
        let r = crate::v1::CreateAclTokenReply { token: None, secret: "s3cr3t-value".into() };
        let text = format!("{r:?}");
        assert!(!text.contains("s3cr3t-value"), "{text}");
    }
}

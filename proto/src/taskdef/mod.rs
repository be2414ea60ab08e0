//! Turning a user's ECS RegisterTaskDefinition document into a validated TaskDefinition.
//! (Being built: see parse.rs / validate.rs.)

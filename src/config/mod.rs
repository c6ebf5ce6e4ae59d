//! UCI configuration: parser, typed model, pure diff.

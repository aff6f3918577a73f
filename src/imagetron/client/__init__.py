"""The `imagetron` command as a client of a running Imagetron, on the public API and the
event stream only (the same the studio uses): log in, prompts, chats, imagine and its
follow-ups with live progress, downloads, the event stream."""

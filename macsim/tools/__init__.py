"""macOS's `security` tool and what it needs (keychain import, trust settings, PKCS#12 checks). The
registry of every emulated command is `macsim.commands`."""

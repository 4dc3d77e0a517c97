"""The fake 1E Client: DMG, pkg, scripts and a daemon that judges the Mac as the real client would."""

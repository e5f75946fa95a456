#!/bin/sh
# App Host entry point for fn_twilio: runs resilient-circuits as the image's non-root user (1001)
# with the configuration file and the log folder where App Host mounts them.
set -e
: "${APP_CONFIG_FILE:=/etc/rescircuits/app.config}"
: "${APP_LOG_DIR:=/var/log/rescircuits}"
export APP_CONFIG_FILE APP_LOG_DIR
if [ ! -r "$APP_CONFIG_FILE" ]; then
    echo "fn_twilio: no readable app.config at $APP_CONFIG_FILE" >&2
    exit 1
fi
mkdir -p "$APP_LOG_DIR" 2>/dev/null || true
exec resilient-circuits run "$@"

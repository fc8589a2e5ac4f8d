#!/bin/bash
set -ex

# Activate services
systemctl enable ssh

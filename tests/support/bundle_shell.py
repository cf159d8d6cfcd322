"""Puts the host's /bin/sh, grep and unshare with their libraries into a bundle's rootfs and
points the bundle's process at a command, so a test can run a bundle pullagent generated under
runc (the test images carry no real programs). Usage: bundle_shell.py BUNDLE COMMAND"""
import json
import os
import shutil
import subprocess
import sys


def copy(root, path):
    """The file's content at its own path inside the root (links followed: the root's /bin
    need not be the host's merged-/usr link)."""
    target = root + path
    os.makedirs(os.path.dirname(target), exist_ok=True)
    if not os.path.exists(target):
        shutil.copy2(path, target)


def main():
    bundle, command = sys.argv[1], sys.argv[2]
    root = os.path.join(bundle, "rootfs")
    for program in ("/bin/sh", "/bin/grep", "/usr/bin/unshare"):
        copy(root, program)
        for line in subprocess.run(["ldd", program], capture_output=True, text=True).stdout.splitlines():
            for word in line.split():
                if word.startswith("/") and os.path.exists(word):
                    copy(root, word)
    path = os.path.join(bundle, "config.json")
    with open(path) as f:
        config = json.load(f)
    config["process"]["args"] = ["/bin/sh", "-c", command]
    config["process"]["user"] = {"uid": 0, "gid": 0}
    with open(path, "w") as f:
        json.dump(config, f)


if __name__ == "__main__":
    main()

"""Guided troubleshooting steps, in the order the bot suggests them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Step:
    topic: str
    key: str
    label: str  # what an agent reads in the handoff packet
    text: str  # what the customer is told

    @property
    def id(self) -> str:
        return f"{self.topic}:{self.key}"


STEPS: dict[str, list[Step]] = {
    "sound": [
        Step(
            "sound",
            "volume_and_mute",
            "Checked volume buttons and mute",
            'Let\'s start simple: press volume-up a few times (or say "volume up") and make sure '
            "the device isn't muted. On the Aurora Speaker and Pulse Soundbar the light ring turns "
            "red when the microphone or sound is muted.",
        ),
        Step(
            "sound",
            "app_limits",
            "Turned off night mode and the volume limit in the app",
            "Next, open the Brightline Home app, pick your device and go to Settings → Sound. "
            "Turn off Night mode and set Volume limit to 100%: night mode caps the volume at 40%.",
        ),
        Step(
            "sound",
            "power_cycle",
            "Restarted the device (unplugged for 30 seconds)",
            "Let's restart it: unplug the device (or hold the power button for 10 seconds on the "
            "Nova Phone), wait 30 seconds, then switch it back on and wait for the light to turn "
            "white.",
        ),
    ],
    "wifi": [
        Step(
            "wifi",
            "restart_router",
            "Restarted the router and the device",
            "First, restart your router and the device: unplug both for 30 seconds, plug the "
            "router in first, and give it two minutes before switching the device back on.",
        ),
        Step(
            "wifi",
            "band_and_distance",
            "Moved to the 2.4 GHz network, closer to the router",
            "Smart-home devices connect best on the 2.4 GHz network. Check in your phone's Wi-Fi "
            "settings that the device is joining the 2.4 GHz network (not 5 GHz), and try it "
            "within a few metres of the router.",
        ),
        Step(
            "wifi",
            "re_add_device",
            "Removed and re-added the device in the app",
            "Let's set the connection up from scratch: in the Brightline Home app, open the "
            "device, "
            "choose Remove device, then tap + to add it again and re-enter your Wi-Fi password.",
        ),
    ],
}

TOPIC_BY_INTENT = {"troubleshoot_sound": "sound", "troubleshoot_wifi": "wifi"}


def next_step(topic: str, tried: list[str]) -> Step | None:
    """The first step of the topic whose label is not among the steps already tried."""
    for step in STEPS[topic]:
        if step.label not in tried:
            return step
    return None

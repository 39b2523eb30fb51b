/**
 * Debian 12 (bookworm, systemd 252): Glint's identity read back inside real
 * systemd + cloud-init + sshd + dhclient guests booted through GRUB and OVMF.
 */
import { debianScenario } from "./debian/scenario.js";

debianScenario("bookworm");

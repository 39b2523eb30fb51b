/**
 * Debian 13 (trixie, systemd 257): Glint's identity read back inside real
 * systemd + cloud-init + sshd + dhclient guests booted through GRUB and OVMF.
 */
import { debianScenario } from "./debian/scenario.js";

debianScenario("trixie", { credentialOnly: true });

/**
 * Debian 12 (bookworm, systemd 252): Glint's identity read back inside real
 * systemd + cloud-init + sshd + dhclient guests booted through GRUB and OVMF.
 * VM a is an OpenStack VM: cloud-init reads Glint's config drive.
 */
import { debianScenario } from "./debian/scenario.js";

debianScenario("bookworm", { openstack: true });

//! Which permission each operation of the API needs, by operationId: served in the
//! OpenAPI document as `x-skiff-permission`, so the role × operation test covers every
//! operation, new ones included. "" = any valid key (or none); "operator:" = the host
//! operator's account only; "a|b" = either.

pub const OPERATION_PERMISSIONS: &[(&str, &str)] = &[
    ("healthCheck", ""),
    ("listRegions", ""),
    ("listTemplates", ""),
    ("listVMPricing", ""),
    ("listVolumePricing", ""),
    ("listSnapshotPricing", ""),
    ("listBackupPricing", ""),
    ("listIPPricing", ""),
    ("listProjects", "account.projects.view"), // filters: a project grant alone lists its projects
    ("createProject", "account.projects.create"),
    ("getProject", "account.projects.view"),
    ("updateProject", "account.projects.manage"),
    ("deleteProject", "account.projects.delete"),
    ("listSSHKeys", "account.sshkeys.view"),
    ("createSSHKey", "account.sshkeys.create"),
    ("getSSHKey", "account.sshkeys.view"),
    ("updateSSHKey", "account.sshkeys.manage"),
    ("deleteSSHKey", "account.sshkeys.delete"),
    ("listMembers", "account.members.view"),
    ("addMember", "account.members.invite"),
    ("getMember", "account.members.view"),
    ("updateMember", "account.members.manage"),
    ("removeMember", "account.members.remove"),
    ("listProjectMembers", "project.members.view"),
    ("addProjectMember", "project.members.invite"),
    ("getProjectMember", "project.members.view"),
    ("updateProjectMember", "project.members.manage"),
    ("removeProjectMember", "project.members.remove"),
    ("createAccountInvitation", "account.members.invite"),
    ("createProjectInvitation", "project.members.invite"),
    (
        "cancelInvitation",
        "account.members.invite|project.members.invite",
    ), // the second in the invitation's project, for a project invitation
    ("listPermissions", ""),
    ("listRoles", "account.roles.view"),
    ("createRole", "account.roles.create"),
    ("getRole", "account.roles.view"),
    ("updateRole", "account.roles.manage"),
    ("deleteRole", "account.roles.delete"),
    ("listApiKeys", "account.apikeys.view"),
    ("createApiKey", "account.apikeys.create"),
    ("getApiKey", "account.apikeys.view"),
    ("updateApiKey", "account.apikeys.manage"),
    ("revokeApiKey", "account.apikeys.revoke"),
    ("regenerateApiKey", "account.apikeys.manage"),
    ("skiffListJobs", "project.settings.view"),
    ("skiffGetJob", ""), // no permission: any key that can see the job's project (account-level jobs: any key of the account)
    ("skiffCreateDiagJob", "operator:account.settings.manage"), // after project.settings.manage in the X-Project-ID project
    ("listVMs", "vm.view"), // filters: only projects where the key holds vm.view
    ("createVM", "vm.create"), // also vpc.create (automatic VPC, or vpc_name + vpc_cidr) or vpc.manage (vpc_id), unless skip_vpc
    ("getVM", "vm.view"),
    ("deleteVM", "vm.delete"), // also vpc.delete when delete_vpc (default true) and the VM has a VPC NIC; volume.delete when volume_action = delete and it holds volumes
    ("startVM", "vm.power"),
    ("stopVM", "vm.power"),
    ("rebootVM", "vm.power"),
    ("hardRebootVM", "vm.power"),
    ("renameVM", "vm.manage"),
    ("listVMNetworks", "vm.view"),
    ("skiffVMConsole", "vm.console"),
    ("resizeVM", "vm.manage"),
    ("resizeVMDisk", "vm.manage"),
    ("resetVMPassword", "vm.manage"),
    ("reinstallVM", "vm.manage"),
    ("factoryResetVM", "vm.manage"),
    ("deleteVMsBulk", "vm.delete"), // in the X-Project-ID project first; then per VM as deleteVM (a refusal there is a failed item of the 200)
    ("addVMTag", "vm.manage"),
    ("updateVMTag", "vm.manage"),
    ("removeVMTag", "vm.manage"),
    ("getVMNotes", "vm.view"),
    ("upsertVMNote", "vm.view"),
    ("updateVMNote", "vm.view"),
    ("appendVMNote", "vm.view"),
    ("saveVMDiskAsImage", "vm.manage"),
    ("skiffListImages", "vm.view"), // with X-Project-ID only; without it nothing is checked and the images of every project the key can see are listed
    ("skiffDeleteImage", "vm.manage"),
    ("listBackups", "backup.view"), // filters: only backups of projects where the key holds backup.view
    ("createBackup", "backup.create"),
    ("getBackup", "backup.view"),
    ("deleteBackup", "backup.delete"),
    ("deleteBackupChain", "backup.delete"),
    ("restoreBackup", "backup.manage"),
    ("resetBackupChain", "backup.manage"),
    ("skiffVerifyBackups", "operator:account.settings.manage"), // without backup_id; with one: backup.manage in that backup's project
    ("listBackupSchedules", "backup.view"), // filters: only schedules of projects where the key holds backup.view
    ("createBackupSchedule", "backup.create"),
    ("getBackupSchedule", "backup.view"),
    ("updateBackupSchedule", "backup.manage"),
    ("deleteBackupSchedule", "backup.delete"),
    ("listSecurityGroups", "security_group.view"), // filters: only projects where the key holds security_group.view
    ("createSecurityGroup", "security_group.create"),
    ("listSecurityGroupTemplates", ""),
    ("getSecurityGroup", "security_group.view"),
    ("updateSecurityGroup", "security_group.manage"),
    ("deleteSecurityGroup", "security_group.delete"),
    ("attachVMSecurityGroup", "security_group.manage"), // also security_group.view on the group
    ("detachVMSecurityGroup", "security_group.manage"), // also security_group.view on the group
    ("listVolumes", "volume.view"), // filters: only projects where the key holds volume.view
    ("createVolume", "volume.create"), // with vm_id: also vm.view on the VM and volume.manage
    ("getVolume", "volume.view"),
    ("deleteVolume", "volume.delete"),
    ("resizeVolume", "volume.manage"),
    ("attachVolume", "volume.manage"), // also vm.view on the VM
    ("detachVolume", "volume.manage"),
    ("listSnapshots", "snapshot.view"), // filters: only projects where the key holds snapshot.view
    ("createSnapshot", "snapshot.create"), // also vm.view (a vm snapshot) or volume.view (a volume snapshot) on the source
    ("getSnapshot", "snapshot.view"),
    ("deleteSnapshot", "snapshot.delete"),
    ("restoreSnapshot", "snapshot.manage"),
    ("renameSnapshot", "snapshot.manage"),
    ("listVPCs", "vpc.view"), // filters: only projects where the key holds vpc.view
    ("createVPC", "vpc.create"),
    ("listVPCCIDRSuggestions", "vpc.view"),
    ("getVPC", "vpc.view"),
    ("updateVPC", "vpc.manage"),
    ("deleteVPC", "vpc.delete"),
    ("attachVMToVPC", "vm.manage"), // also vpc.manage, and vpc.view on the VPC
    ("detachVMFromVPC", "vm.manage"), // also vpc.manage
    ("listIPs", "ip.view"),         // filters: only projects where the key holds ip.view
    ("reserveIP", "ip.create"),
    ("getIP", "ip.view"),
    ("releaseIP", "ip.delete"),
    ("changeIP", "ip.manage"),
    ("attachVMIP", "vm.manage"), // also ip.manage (on ip_id too, when given)
    ("detachVMIP", "vm.manage"), // also ip.manage
];

#[cfg(test)]
mod tests {
    use super::OPERATION_PERMISSIONS;
    use crate::service::authz::PERMISSIONS;

    #[test]
    fn every_entry_names_a_catalog_permission_once() {
        let mut ids: Vec<&str> = OPERATION_PERMISSIONS.iter().map(|(o, _)| *o).collect();
        ids.sort();
        let n = ids.len();
        ids.dedup();
        assert_eq!(ids.len(), n, "an operation listed twice");
        for (op, perms) in OPERATION_PERMISSIONS {
            for perm in perms.split('|') {
                let name = perm.strip_prefix("operator:").unwrap_or(perm);
                assert!(
                    name.is_empty() || PERMISSIONS.iter().any(|p| p.name == name),
                    "{op}: {perm} is not in the catalog"
                );
            }
        }
    }
}

//! The rows of the architecture table.
//!
//! Rules for every row:
//! - figures are copied from the NVIDIA datasheet named in `source` (the A10G, which has no
//!   NVIDIA datasheet, says where its figures come from);
//! - tensor-core figures are DENSE: a datasheet figure marked "with sparsity" (usually `*`)
//!   is halved before it is stored here;
//! - `None` means no tensor-core support for that type on this architecture;
//! - anything not printed on the datasheet is derived and explained in `notes`.

use super::{ArchSpec, PeakTflops};

const V100_SOURCE: &str = "NVIDIA Tesla V100 GPU Accelerator datasheet, SXM2 column \
(https://images.nvidia.com/content/technologies/volta/pdf/volta-v100-datasheet-update-us-1165301-r5.pdf)";
const V100_NOTES: &str =
    "Volta has no sparsity, so datasheet figures are dense. Its tensor cores do \
FP16 only: no TF32/BF16/FP8, and INT8 runs on the CUDA cores (dp4a), so no tensor INT8 peak.";
const V100_PEAKS: PeakTflops = PeakTflops {
    fp64: 7.8,
    fp64_tensor: None,
    fp32: 15.7,
    tf32: None,
    fp16: Some(125.0),
    bf16: None,
    fp8: None,
    int8: None,
};

const A100_SOURCE: &str = "NVIDIA A100 Tensor Core GPU datasheet \
(https://www.nvidia.com/content/dam/en-zz/Solutions/Data-Center/a100/pdf/nvidia-a100-datasheet-us-nvidia-1758950-r4-web.pdf)";
const A100_NOTES: &str = "Datasheet TF32/BF16/FP16/INT8 figures marked * are with sparsity \
(312/624/624/1248); the dense halves are stored. Peaks are the same for all A100 variants; \
memory, bandwidth and power differ.";
const A100_PEAKS: PeakTflops = PeakTflops {
    fp64: 9.7,
    fp64_tensor: Some(19.5),
    fp32: 19.5,
    tf32: Some(156.0),
    fp16: Some(312.0),
    bf16: Some(312.0),
    fp8: None,
    int8: Some(624.0),
};

const H100_SOURCE: &str = "NVIDIA H100 Tensor Core GPU datasheet \
(https://resources.nvidia.com/en-us-tensor-core/nvidia-tensor-core-gpu-datasheet)";

/// Dense H100 SXM / H200 peaks: the datasheet's sparse 989.4 / 1978.9 / 3957.8 halved.
const HOPPER_SXM_PEAKS: PeakTflops = PeakTflops {
    fp64: 34.0,
    fp64_tensor: Some(67.0),
    fp32: 67.0,
    tf32: Some(494.7),
    fp16: Some(989.4),
    bf16: Some(989.4),
    fp8: Some(1978.9),
    int8: Some(1978.9),
};

/// The table itself, oldest architecture first.
pub(super) static ARCH_TABLE: &[ArchSpec] = &[
    ArchSpec {
        key: "v100-sxm2-16gb",
        name: "V100 SXM2 16GB",
        architecture: "Volta",
        year: 2017,
        compute_capability: (7, 0),
        sm_count: 80,
        cuda_cores: 5120,
        tensor_cores: 640,
        memory_gb: 16.0,
        memory_type: "HBM2",
        bandwidth_gb_s: 900.0,
        tdp_w: 300.0,
        peaks: V100_PEAKS,
        source: V100_SOURCE,
        notes: V100_NOTES,
    },
    ArchSpec {
        key: "v100-sxm2-32gb",
        name: "V100 SXM2 32GB",
        architecture: "Volta",
        year: 2018,
        compute_capability: (7, 0),
        sm_count: 80,
        cuda_cores: 5120,
        tensor_cores: 640,
        memory_gb: 32.0,
        memory_type: "HBM2",
        bandwidth_gb_s: 900.0,
        tdp_w: 300.0,
        peaks: V100_PEAKS,
        source: V100_SOURCE,
        notes: V100_NOTES,
    },
    ArchSpec {
        key: "t4",
        name: "T4",
        architecture: "Turing",
        year: 2018,
        compute_capability: (7, 5),
        sm_count: 40,
        cuda_cores: 2560,
        tensor_cores: 320,
        memory_gb: 16.0,
        memory_type: "GDDR6",
        bandwidth_gb_s: 320.0,
        tdp_w: 70.0,
        peaks: PeakTflops {
            fp64: 0.25,
            fp64_tensor: None,
            fp32: 8.1,
            tf32: None,
            fp16: Some(65.0),
            bf16: None,
            fp8: None,
            int8: Some(130.0),
        },
        source: "NVIDIA T4 Tensor Core GPU datasheet \
(https://www.nvidia.com/content/dam/en-zz/Solutions/Data-Center/tesla-t4/t4-tensor-core-datasheet-951643.pdf)",
        notes: "Turing has no sparsity, so datasheet figures are dense (FP16 is mixed \
FP16/FP32). FP64 is not on the datasheet: 1/32 of FP32 (Turing's ratio). No TF32/BF16/FP8.",
    },
    ArchSpec {
        key: "a100-sxm-40gb",
        name: "A100 SXM 40GB",
        architecture: "Ampere",
        year: 2020,
        compute_capability: (8, 0),
        sm_count: 108,
        cuda_cores: 6912,
        tensor_cores: 432,
        memory_gb: 40.0,
        memory_type: "HBM2",
        bandwidth_gb_s: 1555.0,
        tdp_w: 400.0,
        peaks: A100_PEAKS,
        source: A100_SOURCE,
        notes: A100_NOTES,
    },
    ArchSpec {
        key: "a100-sxm-80gb",
        name: "A100 SXM 80GB",
        architecture: "Ampere",
        year: 2020,
        compute_capability: (8, 0),
        sm_count: 108,
        cuda_cores: 6912,
        tensor_cores: 432,
        memory_gb: 80.0,
        memory_type: "HBM2e",
        bandwidth_gb_s: 2039.0,
        tdp_w: 400.0,
        peaks: A100_PEAKS,
        source: A100_SOURCE,
        notes: A100_NOTES,
    },
    ArchSpec {
        key: "a100-pcie-40gb",
        name: "A100 PCIe 40GB",
        architecture: "Ampere",
        year: 2020,
        compute_capability: (8, 0),
        sm_count: 108,
        cuda_cores: 6912,
        tensor_cores: 432,
        memory_gb: 40.0,
        memory_type: "HBM2",
        bandwidth_gb_s: 1555.0,
        tdp_w: 250.0,
        peaks: A100_PEAKS,
        source: A100_SOURCE,
        notes: A100_NOTES,
    },
    ArchSpec {
        key: "a100-pcie-80gb",
        name: "A100 PCIe 80GB",
        architecture: "Ampere",
        year: 2021,
        compute_capability: (8, 0),
        sm_count: 108,
        cuda_cores: 6912,
        tensor_cores: 432,
        memory_gb: 80.0,
        memory_type: "HBM2e",
        bandwidth_gb_s: 1935.0,
        tdp_w: 300.0,
        peaks: A100_PEAKS,
        source: A100_SOURCE,
        notes: A100_NOTES,
    },
    ArchSpec {
        key: "a10",
        name: "A10",
        architecture: "Ampere",
        year: 2021,
        compute_capability: (8, 6),
        sm_count: 72,
        cuda_cores: 9216,
        tensor_cores: 288,
        memory_gb: 24.0,
        memory_type: "GDDR6",
        bandwidth_gb_s: 600.0,
        tdp_w: 150.0,
        peaks: PeakTflops {
            fp64: 0.49,
            fp64_tensor: None,
            fp32: 31.2,
            tf32: Some(62.5),
            fp16: Some(125.0),
            bf16: Some(125.0),
            fp8: None,
            int8: Some(250.0),
        },
        source: "NVIDIA A10 Tensor Core GPU datasheet \
(https://www.nvidia.com/content/dam/en-zz/Solutions/Data-Center/a10/pdf/a10-datasheet.pdf)",
        notes: "Datasheet tensor figures marked * are with sparsity (125/250/250/500); the \
dense halves are stored. FP64 is not on the datasheet: 1/64 of FP32 (GA10x ratio).",
    },
    ArchSpec {
        key: "a10g",
        name: "A10G",
        architecture: "Ampere",
        year: 2021,
        compute_capability: (8, 6),
        sm_count: 80,
        cuda_cores: 10240,
        tensor_cores: 320,
        memory_gb: 24.0,
        memory_type: "GDDR6",
        bandwidth_gb_s: 600.0,
        tdp_w: 300.0,
        peaks: PeakTflops {
            fp64: 0.55,
            fp64_tensor: None,
            fp32: 35.0,
            tf32: Some(35.0),
            fp16: Some(70.0),
            bf16: Some(70.0),
            fp8: None,
            int8: Some(140.0),
        },
        source: "No NVIDIA datasheet (AWS-only variant of the A10, in EC2 G5 instances, \
https://aws.amazon.com/ec2/instance-types/g5/); peaks as tabulated in \
https://www.baseten.co/blog/nvidia-a10-vs-a10g-for-ml-model-inference/",
        notes: "The gpubench tutorial's table gives the A10G 9,216 CUDA cores, 288 tensor cores \
and 150 W, which are the A10's datasheet figures. A real A10G reports 80 SMs (10,240 CUDA \
cores, 320 tensor cores) to CUDA and a 300 W power limit to nvidia-smi; it trades tensor \
throughput (70 vs 125 TFLOPS FP16 dense) for higher FP32. FP64: 1/64 of FP32 (GA10x ratio).",
    },
    ArchSpec {
        key: "h100-sxm",
        name: "H100 SXM",
        architecture: "Hopper",
        year: 2022,
        compute_capability: (9, 0),
        sm_count: 132,
        cuda_cores: 16896,
        tensor_cores: 528,
        memory_gb: 80.0,
        memory_type: "HBM3",
        bandwidth_gb_s: 3350.0,
        tdp_w: 700.0,
        peaks: HOPPER_SXM_PEAKS,
        source: H100_SOURCE,
        notes: "H100 SXM column. Datasheet TF32/BF16/FP16/FP8/INT8 figures are with sparsity \
(989/1979/1979/3958/3958); the dense halves are stored. NVML names it \
\"NVIDIA H100 80GB HBM3\".",
    },
    ArchSpec {
        key: "h100-pcie",
        name: "H100 PCIe",
        architecture: "Hopper",
        year: 2022,
        compute_capability: (9, 0),
        sm_count: 114,
        cuda_cores: 14592,
        tensor_cores: 456,
        memory_gb: 80.0,
        memory_type: "HBM2e",
        bandwidth_gb_s: 2000.0,
        tdp_w: 350.0,
        peaks: PeakTflops {
            fp64: 26.0,
            fp64_tensor: Some(51.0),
            fp32: 51.0,
            tf32: Some(378.0),
            fp16: Some(756.5),
            bf16: Some(756.5),
            fp8: Some(1513.0),
            int8: Some(1513.0),
        },
        source: H100_SOURCE,
        notes: "H100 PCIe column (the 2022 datasheet; later revisions list the H100 NVL \
instead). Datasheet tensor figures are with sparsity (756/1513/1513/3026/3026); the dense \
halves are stored. TDP 300-350 W configurable.",
    },
    ArchSpec {
        key: "h100-nvl",
        name: "H100 NVL",
        architecture: "Hopper",
        year: 2023,
        compute_capability: (9, 0),
        sm_count: 132,
        cuda_cores: 16896,
        tensor_cores: 528,
        memory_gb: 94.0,
        memory_type: "HBM3",
        bandwidth_gb_s: 3900.0,
        tdp_w: 400.0,
        peaks: PeakTflops {
            fp64: 30.0,
            fp64_tensor: Some(60.0),
            fp32: 60.0,
            tf32: Some(417.5),
            fp16: Some(835.5),
            bf16: Some(835.5),
            fp8: Some(1670.5),
            int8: Some(1670.5),
        },
        source: H100_SOURCE,
        notes: "H100 NVL column (per GPU). Datasheet tensor figures are with sparsity \
(835/1671/1671/3341/3341); the dense halves are stored. TDP 350-400 W configurable.",
    },
    ArchSpec {
        key: "l4",
        name: "L4",
        architecture: "Ada Lovelace",
        year: 2023,
        compute_capability: (8, 9),
        sm_count: 58,
        cuda_cores: 7424,
        tensor_cores: 232,
        memory_gb: 24.0,
        memory_type: "GDDR6",
        bandwidth_gb_s: 300.0,
        tdp_w: 72.0,
        peaks: PeakTflops {
            fp64: 0.47,
            fp64_tensor: None,
            fp32: 30.3,
            tf32: Some(60.0),
            fp16: Some(121.0),
            bf16: Some(121.0),
            fp8: Some(242.5),
            int8: Some(242.5),
        },
        source: "NVIDIA L4 Tensor Core GPU datasheet \
(https://resources.nvidia.com/en-us-data-center-overview/l4-gpu-datasheet)",
        notes: "Datasheet tensor figures are all with sparsity (120/242/242/485/485); the dense \
halves are stored. FP64 is not on the datasheet: 1/64 of FP32 (Ada ratio).",
    },
    ArchSpec {
        key: "l40s",
        name: "L40S",
        architecture: "Ada Lovelace",
        year: 2023,
        compute_capability: (8, 9),
        sm_count: 142,
        cuda_cores: 18176,
        tensor_cores: 568,
        memory_gb: 48.0,
        memory_type: "GDDR6",
        bandwidth_gb_s: 864.0,
        tdp_w: 350.0,
        peaks: PeakTflops {
            fp64: 1.43,
            fp64_tensor: None,
            fp32: 91.6,
            tf32: Some(183.0),
            fp16: Some(362.05),
            bf16: Some(362.05),
            fp8: Some(733.0),
            int8: Some(733.0),
        },
        source: "NVIDIA L40S GPU datasheet \
(https://resources.nvidia.com/en-us-l40s/l40s-datasheet-28413)",
        notes: "The datasheet gives dense | sparse pairs (183 | 366, 362.05 | 733, 733 | 1466); \
the dense figures are stored. FP64 is not on the datasheet: 1/64 of FP32 (Ada ratio).",
    },
    ArchSpec {
        key: "h200",
        name: "H200 SXM",
        architecture: "Hopper",
        year: 2024,
        compute_capability: (9, 0),
        sm_count: 132,
        cuda_cores: 16896,
        tensor_cores: 528,
        memory_gb: 141.0,
        memory_type: "HBM3e",
        bandwidth_gb_s: 4800.0,
        tdp_w: 700.0,
        peaks: HOPPER_SXM_PEAKS,
        source: "NVIDIA H200 Tensor Core GPU datasheet, H200 SXM column \
(https://www.nvidia.com/en-us/data-center/h200/)",
        notes: "Same GH100 compute as the H100 SXM; datasheet tensor figures are with sparsity \
(989/1979/1979/3958/3958), the dense halves are stored. NVML names it \"NVIDIA H200\".",
    },
    ArchSpec {
        key: "b200",
        name: "B200",
        architecture: "Blackwell",
        year: 2024,
        compute_capability: (10, 0),
        sm_count: 148,
        cuda_cores: 18944,
        tensor_cores: 592,
        memory_gb: 180.0,
        memory_type: "HBM3e",
        bandwidth_gb_s: 7700.0,
        tdp_w: 1000.0,
        peaks: PeakTflops {
            fp64: 37.0,
            fp64_tensor: Some(37.0),
            fp32: 75.0,
            tf32: Some(1100.0),
            fp16: Some(2250.0),
            bf16: Some(2250.0),
            fp8: Some(4500.0),
            int8: Some(4500.0),
        },
        source: "NVIDIA HGX B200 specifications, per-GPU column \
(https://www.nvidia.com/en-us/data-center/hgx/)",
        notes: "Per-GPU figures of HGX B200 (1,000 W). The tensor figures on that page are with \
sparsity (2.2 PF TF32, 4.5 PF FP16/BF16, 9 PF FP8/INT8); the dense halves are stored. FP4 \
(9 PF dense) is not a column of this table. SM/core counts are of the full 2-die GPU.",
    },
];

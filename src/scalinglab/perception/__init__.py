"""2D detection: synthetic driving scenes, COCO and KITTI loaders, timm backbones under torchvision's FCOS."""

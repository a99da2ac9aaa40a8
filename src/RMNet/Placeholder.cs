namespace RMNet;
